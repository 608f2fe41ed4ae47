import Testing
@testable import SwvmBase

@Suite struct JSONTests {
    @Test func parsesNestedDocuments() throws {
        let v = try JSON.parse(#"{"a": [1, -2.5, true, null, "x\u00e9\n"], "b": {"c": "d"}, "e": 18446744073709551615}"#)
        #expect(v["a"]?[0]?.int == 1)
        #expect(v["a"]?[1]?.double == -2.5)
        #expect(v["a"]?[2]?.bool == true)
        #expect(v["a"]?[3]?.isNull == true)
        #expect(v["a"]?[4]?.string == "xé\n")
        #expect(v["b"]?["c"]?.string == "d")
        #expect(v["e"]?.double == 18446744073709551615.0)
    }

    /// Integers above Int64.max stay exact (an rlimit of RLIM_INFINITY, a
    /// seccomp argument): as a Double, 2^64-1 and 2^64-15 were the same.
    @Test func largeUnsignedIntegersStayExact() throws {
        let v = try JSON.parse("[18446744073709551615, 18446744073709551601, 9223372036854775808, 18446744073709551616]")
        #expect(v[0] == .unsigned(UInt64.max) && v[0]?.uint64 == UInt64.max && v[0]?.int64 == nil)
        #expect(v[1]?.uint64 == 18_446_744_073_709_551_601 && v[0] != v[1])
        #expect(v[2]?.uint64 == 1 << 63)
        #expect(v[3]?.uint64 == nil)   // past UInt64: only a Double, never wrapped
        #expect(v.serialized() == "[18446744073709551615,18446744073709551601,9223372036854775808,1.8446744073709552e+19]")
        #expect(JSON.integer(-1).uint64 == nil && JSON.integer(7).uint64 == 7)
    }

    @Test func lastDuplicateKeyWins() throws {
        #expect(try JSON.parse(#"{"k": 1, "k": 2}"#)["k"]?.int == 2)
    }

    @Test func surrogatePairs() throws {
        #expect(try JSON.parse(#""\ud83d\ude00""#).string == "😀")
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "tru", "01", "1.", "\"\\x\"", "\"a\nb\"", "{} x", "[1 2]", "-", "{\"a\":}",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
    }

    @Test func boundsNestingDepth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSON.parse(ok)) != nil)
    }

    @Test func errorsNameTheOffset() {
        do {
            _ = try JSON.parse(#"{"a": [1, 2,, 3]}"#)
            Issue.record("expected an error")
        } catch let e as JSON.ParseError {
            #expect(e.offset == 12)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func serializationRoundTrips() throws {
        let v: JSON = .object([("s", "a\"b\\c\u{1}"), ("n", 3), ("l", [true, nil, .number(1.5)]), ("o", .object([]))])
        let text = v.serialized()
        #expect(text == #"{"s":"a\"b\\c\u0001","n":3,"l":[true,null,1.5],"o":{}}"#)
        #expect(try JSON.parse(text) == v)
        #expect(try JSON.parse(v.serialized(pretty: true)) == v)
    }
}
