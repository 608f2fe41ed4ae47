// MicroVM: work in progress
