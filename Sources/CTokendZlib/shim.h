// The system's zlib (the one CompressNIO links too), for `Gunzip`, which needs what CompressNIO does
// not tell: whether inflate reached the end of the gzip member.
#ifndef C_TOKEND_ZLIB_H
#define C_TOKEND_ZLIB_H

#include <zlib.h>

// inflateInit2 is a macro, which Swift cannot call.
static inline int CTokendZlib_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}

#endif
