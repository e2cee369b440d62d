{{/*
The plugin's configuration file, as YAML with the same tables and keys as the TOML config
(docs/config-yaml.md). Built as a dict and printed with toYaml so quoting is always right.
The API key is never written here: pagerduty.api_key is the PATH of the mounted Secret file.
*/}}
{{- define "pagerduty.config" -}}
{{- $teleport := dict "addr" (include "pagerduty.teleportAddress" .) "identity" (printf "%s/%s" (include "pagerduty.identityDir" .) (include "pagerduty.identitySecretPath" .)) "refresh_identity" true -}}
{{- $pd := dict
    "api_key" (printf "%s/%s" (include "pagerduty.apiKeyDir" .) .Values.pagerduty.apiKeySecretPath)
    "user_email" .Values.pagerduty.userEmail
    "api_endpoint" .Values.pagerduty.apiEndpoint
    "notify_service" .Values.pagerduty.notifyServiceAnnotation
    "services" .Values.pagerduty.servicesAnnotation
    "rate_limit_per_minute" (int .Values.pagerduty.rateLimitPerMinute)
    "cache_ttl" .Values.pagerduty.cacheTTL
    "connect_timeout" .Values.pagerduty.connectTimeout
    "request_timeout" .Values.pagerduty.requestTimeout
    "incident_urgency" .Values.pagerduty.incidentUrgency
    "incident_priority_id" .Values.pagerduty.incidentPriorityId -}}
{{- if .Values.pagerduty.notifyAllServices }}{{ $_ := set $pd "notify_all_services" true }}{{ end -}}
{{- with .Values.pagerduty.autoApproveEscalationLevels }}{{ $_ := set $pd "auto_approve_escalation_levels" . }}{{ end -}}
{{- with .Values.pagerduty.autoApproveSchedules }}{{ $_ := set $pd "auto_approve_schedules" . }}{{ end -}}
{{- $log := dict "output" .Values.log.output "severity" .Values.log.severity "format" .Values.log.format -}}
{{- $status := dict "listen_addr" (printf ":%d" (int .Values.metrics.port)) -}}
{{- $reconcile := dict "workers" (int .Values.reconcile.workers) "resync_interval" .Values.reconcile.resyncInterval "shutdown_timeout" .Values.reconcile.shutdownTimeout -}}
{{- if .Values.reconcile.dryRun }}{{ $_ := set $reconcile "dry_run" true }}{{ end -}}
{{- $le := dict "enabled" (eq (include "pagerduty.leaderElection" .) "true") "lease_name" (include "pagerduty.leaseName" .) "lease_duration" .Values.leaderElection.leaseDuration "renew_deadline" .Values.leaderElection.renewDeadline "retry_period" .Values.leaderElection.retryPeriod -}}
{{- with .Values.leaderElection.leaseNamespace }}{{ $_ := set $le "lease_namespace" . }}{{ end -}}
{{- toYaml (dict "teleport" $teleport "pagerduty" $pd "log" $log "status" $status "reconcile" $reconcile "leader_election" $le) }}
{{- end }}
