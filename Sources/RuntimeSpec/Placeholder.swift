// RuntimeSpec: work in progress
