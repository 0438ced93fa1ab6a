/* error.c: status names and error messages. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

int ckpt_fail(ckpt_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        /* One line: a file name may carry a newline; never let it split the message. */
        for (char *p = err->message; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        err->code = code;
    }
    return code;
}

void ckpt_error_clear(ckpt_error *err)
{
    if (err) {
        err->code = CKPT_OK;
        err->message[0] = '\0';
    }
}

const char *ckpt_status_name(int status)
{
    switch (status) {
    case CKPT_OK: return "ok";
    case CKPT_ERR_ARG: return "invalid argument";
    case CKPT_ERR_FORMAT: return "format error";
    case CKPT_ERR_UNSUPPORTED: return "unsupported";
    case CKPT_ERR_LIMIT: return "limit exceeded";
    case CKPT_ERR_NOT_FOUND: return "not found";
    case CKPT_ERR_READ: return "read error";
    case CKPT_ERR_WRITE: return "write error";
    case CKPT_ERR_EXISTS: return "already exists";
    case CKPT_ERR_NOMEM: return "out of memory";
    case CKPT_ERR_MISMATCH: return "mismatch";
    case CKPT_ERR_CANCELLED: return "cancelled";
    default: return "unknown status";
    }
}

int ckpt_status_is_input_error(int status)
{
    switch (status) {
    case CKPT_ERR_FORMAT:
    case CKPT_ERR_UNSUPPORTED:
    case CKPT_ERR_LIMIT:
    case CKPT_ERR_NOT_FOUND:
    case CKPT_ERR_READ:
        return 1;
    default:
        return 0;
    }
}

const char *ckpt_version(void)
{
    return CKPT_VERSION_STRING;
}
