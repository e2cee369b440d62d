/* strmap.c - string-keyed open-addressing hash map with backward-shift deletion. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/strmap.h"
#include "tpd/util.h"

struct slot {
	char *key;
	void *value;
};

struct tpd_strmap {
	struct slot *slots;
	size_t cap, len;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static size_t find(const struct slot *slots, size_t cap, const char *key)
{
	size_t i = hash_str(key) & (cap - 1);

	while (slots[i].key && strcmp(slots[i].key, key))
		i = (i + 1) & (cap - 1);
	return i;
}

static void grow(tpd_strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	struct slot *s = xcalloc(cap, sizeof(*s));

	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key)
			s[find(s, cap, m->slots[i].key)] = m->slots[i];
	}
	free(m->slots);
	m->slots = s;
	m->cap = cap;
}

tpd_strmap *tpd_strmap_new(void)
{
	tpd_strmap *m = tpd_new(tpd_strmap);

	grow(m);
	return m;
}

void tpd_strmap_free(tpd_strmap *m, void (*free_value)(void *))
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key) {
			free(m->slots[i].key);
			if (free_value)
				free_value(m->slots[i].value);
		}
	}
	free(m->slots);
	free(m);
}

void *tpd_strmap_get(const tpd_strmap *m, const char *key)
{
	size_t i = find(m->slots, m->cap, key);

	return m->slots[i].key ? m->slots[i].value : NULL;
}

void *tpd_strmap_put(tpd_strmap *m, const char *key, void *value)
{
	size_t i;
	void *old;

	if ((m->len + 1) * 4 > m->cap * 3)
		grow(m);
	i = find(m->slots, m->cap, key);
	if (m->slots[i].key) {
		old = m->slots[i].value;
		m->slots[i].value = value;
		return old;
	}
	m->slots[i].key = xstrdup(key);
	m->slots[i].value = value;
	m->len++;
	return NULL;
}

void *tpd_strmap_del(tpd_strmap *m, const char *key)
{
	size_t i = find(m->slots, m->cap, key), j;
	void *old;

	if (!m->slots[i].key)
		return NULL;
	old = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->len--;
	/* Backward-shift: re-place the rest of the probe cluster. */
	for (j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
		struct slot s = m->slots[j];

		m->slots[j].key = NULL;
		m->slots[find(m->slots, m->cap, s.key)] = s;
	}
	return old;
}

size_t tpd_strmap_len(const tpd_strmap *m)
{
	return m->len;
}

void tpd_strmap_each(const tpd_strmap *m, void (*fn)(void *ud, const char *key, void *value), void *ud)
{
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key)
			fn(ud, m->slots[i].key, m->slots[i].value);
	}
}
