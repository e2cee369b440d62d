/* strmap.h - a small string-keyed hash map (open addressing, linear probing) owning its keys.
 * Values are opaque pointers owned by the caller. Not thread-safe: callers lock. */
#ifndef TPD_STRMAP_H
#define TPD_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tpd_strmap tpd_strmap;

tpd_strmap *tpd_strmap_new(void);
/* Frees the map and its keys; calls free_value on every value if not NULL. */
void tpd_strmap_free(tpd_strmap *m, void (*free_value)(void *));
/* Value for key or NULL. */
void *tpd_strmap_get(const tpd_strmap *m, const char *key);
/* Sets key → value; returns the previous value (or NULL) for the caller to free. */
void *tpd_strmap_put(tpd_strmap *m, const char *key, void *value);
/* Removes key; returns its value (or NULL). */
void *tpd_strmap_del(tpd_strmap *m, const char *key);
size_t tpd_strmap_len(const tpd_strmap *m);
/* Calls fn for every entry (no modification of the map inside fn). */
void tpd_strmap_each(const tpd_strmap *m, void (*fn)(void *ud, const char *key, void *value), void *ud);

#endif
