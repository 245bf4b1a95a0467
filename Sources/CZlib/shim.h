#ifndef DESCENT_CZLIB_SHIM_H
#define DESCENT_CZLIB_SHIM_H
// The system zlib (Debian/Ubuntu: zlib1g-dev; part of the macOS SDK). Only Sources/Datasets uses
// it, to read gzip-compressed uploads (Foundation on Linux has no gzip API).
#include <zlib.h>
#endif
