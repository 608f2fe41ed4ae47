import ArgumentParser

/// The option words of a command line that belong to the `forwarded`
/// option groups, as the user wrote them and in their order: `swvm compare`
/// passes its `swvm run` options on to the runs it starts this way, so no
/// list of run flags is written twice. ArgumentParser itself decides how many
/// words each option takes (a flag, `--opt=value`, `-it`, or an option and
/// its value); words the `own` groups take are left out. The scan ends at the
/// first word neither takes (the image) or at `--`.
public func forwardedOptionWords(_ words: [String], forwarded: [any ParsableArguments.Type],
                                 own: [any ParsableArguments.Type]) -> [String] {
    var result: [String] = []
    var i = 0
    while i < words.count, words[i] != "--" {
        if let n = wordsTaken(by: own, in: words, at: i) {
            i += n
        } else if let n = wordsTaken(by: forwarded, in: words, at: i) {
            result += words[i..<i + n]
            i += n
        } else {
            break
        }
    }
    return result
}

/// 1 when words[i] alone parses as an option of one of `groups`, 2 when it
/// does with the next word as its value, nil when it is not theirs.
func wordsTaken(by groups: [any ParsableArguments.Type], in words: [String], at i: Int) -> Int? {
    for n in 1...2 where i + n <= words.count {
        let candidate = Array(words[i..<i + n])
        if groups.contains(where: { (try? $0.parse(candidate)) != nil }) { return n }
    }
    return nil
}
