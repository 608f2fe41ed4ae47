// OpenSSL's libcrypto, for SHA-256 (its assembly: SHA-NI, AVX2). The
// SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, but they run
// the same code and their context is a plain struct Swift can copy.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
