#ifndef QKD_CSODIUM_SHIM_H
#define QKD_CSODIUM_SHIM_H
// Thin shim over libsodium (Debian package libsodium-dev). Only QKDCrypto imports this module.
#include <sodium.h>
#endif
