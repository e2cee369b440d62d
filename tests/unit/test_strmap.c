/* Unit tests for strmap.c: put/get/del with growth and backward-shift deletion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpd/strmap.h"

static void count(void *ud, const char *key, void *value)
{
	(void)key;
	(void)value;
	(*(size_t *)ud)++;
}

static void test_map(void **state)
{
	tpd_strmap *m = tpd_strmap_new();
	char k[32];
	size_t n = 0;

	(void)state;
	for (intptr_t i = 1; i <= 5000; i++) {
		snprintf(k, sizeof(k), "req-%ld", (long)i);
		assert_null(tpd_strmap_put(m, k, (void *)i));
	}
	assert_int_equal(tpd_strmap_len(m), 5000);
	for (intptr_t i = 1; i <= 5000; i += 2) {
		snprintf(k, sizeof(k), "req-%ld", (long)i);
		assert_int_equal((intptr_t)tpd_strmap_del(m, k), i);
	}
	assert_int_equal(tpd_strmap_len(m), 2500);
	for (intptr_t i = 1; i <= 5000; i++) {
		snprintf(k, sizeof(k), "req-%ld", (long)i);
		if (i % 2)
			assert_null(tpd_strmap_get(m, k));
		else
			assert_int_equal((intptr_t)tpd_strmap_get(m, k), i);
	}
	assert_int_equal((intptr_t)tpd_strmap_put(m, "req-2", (void *)7), 2);
	assert_int_equal((intptr_t)tpd_strmap_get(m, "req-2"), 7);
	assert_null(tpd_strmap_del(m, "absent"));
	tpd_strmap_each(m, count, &n);
	assert_int_equal(n, 2500);
	tpd_strmap_free(m, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_map)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
