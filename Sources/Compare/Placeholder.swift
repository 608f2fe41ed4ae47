// Compare: work in progress
