/* err.c - names and texts of tpd_err codes, generated from TPD_ERR_MAP. */
#include <stdarg.h>
#include <stdio.h>

#include "tpd/err.h"

static const char *const err_texts[] = {
#define TPD_ERR_TEXT(name, text) text,
    TPD_ERR_MAP(TPD_ERR_TEXT)
#undef TPD_ERR_TEXT
};

static const char *const err_names[] = {
#define TPD_ERR_NAME(name, text) #name,
    TPD_ERR_MAP(TPD_ERR_NAME)
#undef TPD_ERR_NAME
};

const char *tpd_strerror(tpd_err e)
{
	if ((unsigned)e >= TPD_ERR__COUNT)
		return "unknown error";
	return err_texts[e];
}

const char *tpd_errname(tpd_err e)
{
	if ((unsigned)e >= TPD_ERR__COUNT)
		return "UNKNOWN";
	return err_names[e];
}

tpd_err tpd_seterr(char *err, tpd_err e, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return e;
	va_start(ap, fmt);
	vsnprintf(err, TPD_ERRLEN, fmt, ap);
	va_end(ap);
	return e;
}
