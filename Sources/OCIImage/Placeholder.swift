// OCIImage: work in progress
