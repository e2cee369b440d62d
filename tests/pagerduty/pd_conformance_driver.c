/* pd_conformance_driver.c - runs every PagerDuty call the plugin makes, once, against an endpoint
 * (Prism's validating proxy in front of the fake), so prism_conformance.py can check each request
 * against PagerDuty's published OpenAPI contract. Prints one line per call; exits 1 if any call
 * did not give the expected result (with `prism proxy --errors`, a non-conforming request is
 * answered 422 and never reaches the fake, so it fails here too).
 *
 * usage: pd_conformance_driver ENDPOINT API_KEY FROM_EMAIL SERVICE_NAME USER_EMAIL */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpd/pagerduty.h"

static int failures;

static void check(const char *what, tpd_err got, tpd_err want, const char *err)
{
	printf("%-28s %-14s %s\n", what, tpd_errname(got), got == want ? "ok" : err);
	if (got != want)
		failures++;
}

static void count(void *ud, const char *id, const char *key)
{
	(void)id;
	(void)key;
	(*(int *)ud)++;
}

int main(int argc, char **argv)
{
	char err[TPD_ERRLEN] = "", *id = NULL, *id2 = NULL, *status = NULL;
	tpd_pd *pd = NULL;
	tpd_pd_service svc = {0};
	tpd_pd_user user = {0};
	bool adopted = false, on[1] = {false};
	int open = 0;

	if (argc != 6) {
		fprintf(stderr, "usage: %s ENDPOINT API_KEY FROM_EMAIL SERVICE_NAME USER_EMAIL\n", argv[0]);
		return 2;
	}
	tpd_pd_opts o = {.api_endpoint = argv[1],
	                 .api_key = argv[2],
	                 .user_email = argv[3],
	                 .user_agent_version = "conformance",
	                 .max_retry_ms = 2000,
	                 .rate_limit_per_minute = 900,
	                 .incident_urgency = "high",
	                 .cache_ttl_ms = 300000,
	                 .connect_timeout_ms = 5000,
	                 .request_timeout_ms = 10000};
	if (tpd_pd_new(&o, &pd, err) != TPD_ERR_OK) {
		fprintf(stderr, "tpd_pd_new: %s\n", err);
		return 1;
	}
	check("health", tpd_pd_health(pd, err), TPD_ERR_OK, err);
	check("find_service", tpd_pd_find_service(pd, argv[4], &svc, err), TPD_ERR_OK, err);
	check("find_user", tpd_pd_find_user(pd, argv[5], &user, err), TPD_ERR_OK, err);
	if (svc.id && user.id) {
		const char *eps[] = {svc.escalation_policy_id};
		check("oncall", tpd_pd_oncall(pd, user.id, eps, 1, on, err), TPD_ERR_OK, err);
		if (!on[0]) {
			printf("oncall: expected the user to be on call\n");
			failures++;
		}
		tpd_pd_incident_spec s = {
		    .title = "Access request from alice@example.com",
		    .service_id = svc.id,
		    .incident_key = TPD_PD_INCIDENT_KEY_PREFIX "conformance-1",
		    .details = "alice@example.com requested permissions for roles editor on Teleport "
		               "at 01 Jan 26 00:00 UTC.\nReason: testing\n\n"};
		check("create_incident", tpd_pd_create_incident(pd, &s, &id, &adopted, err), TPD_ERR_OK, err);
		check("create_incident (again)", tpd_pd_create_incident(pd, &s, &id2, &adopted, err),
		      TPD_ERR_OK, err);
		if (!adopted || !id || !id2 || strcmp(id, id2) != 0) {
			printf("create_incident (again): expected adoption of the same incident\n");
			failures++;
		}
		free(id2);
		id2 = NULL;
		check("find_incident_by_key",
		      tpd_pd_find_incident_by_key(pd, s.incident_key, &id2, &status, err), TPD_ERR_OK, err);
		if (id) {
			check("add_note",
			      tpd_pd_add_note(pd, id, "bob reviewed the request.\nResolution: APPROVED.\n",
			                      err),
			      TPD_ERR_OK, err);
			{
				bool have = false;

				check("incident_has_note",
				      tpd_pd_incident_has_note(
				          pd, id, "bob reviewed the request.\nResolution: APPROVED.\n", &have,
				          err),
				      TPD_ERR_OK, err);
				if (!have) {
					printf("incident_has_note: the note just posted was not found\n");
					failures++;
				}
			}
			check("list_open_incidents",
			      tpd_pd_list_open_incidents(pd, TPD_PD_INCIDENT_KEY_PREFIX, count, &open, err),
			      TPD_ERR_OK, err);
			if (open != 1) {
				printf("list_open_incidents: expected 1 open incident, got %d\n", open);
				failures++;
			}
			check("resolve_incident", tpd_pd_resolve_incident(pd, id, err), TPD_ERR_OK, err);
			check("resolve_incident (again)", tpd_pd_resolve_incident(pd, id, err), TPD_ERR_OK,
			      err);
		}
	}
	tpd_pd_service_clear(&svc);
	check("find_service (missing)", tpd_pd_find_service(pd, "no such service", &svc, err),
	      TPD_ERR_NOT_FOUND, err);
	tpd_pd_service_clear(&svc);
	tpd_pd_user_clear(&user);
	free(id);
	free(id2);
	free(status);
	tpd_pd_free(pd);
	printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
