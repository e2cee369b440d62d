{{/*
Helpers of the teleport-plugin-pagerduty chart: names, labels, the identity and API key
Secret names, the Teleport address, and whether leader election is on. Helper names follow
Teleport's chart ("pagerduty.*") so that overrides people wrote against it still read the same.
*/}}

{{/* The chart name, or nameOverride, cut to 63 characters. */}}
{{- define "pagerduty.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: fullnameOverride, else the release name when it contains the chart name,
else "<release>-<name>", cut to 63 characters. */}}
{{- define "pagerduty.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "pagerduty.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "pagerduty.labels" -}}
helm.sh/chart: {{ include "pagerduty.chart" . }}
{{ include "pagerduty.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the plugin's pods. */}}
{{- define "pagerduty.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pagerduty.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "pagerduty.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pagerduty.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The tbot release's full name, as Teleport's tbot chart computes it for the release
"<release>-tbot". */}}
{{- define "pagerduty.tbot.fullname" -}}
{{- printf "%s-%s" .Release.Name (default "tbot" .Values.tbot.nameOverride) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The tbot join token name. */}}
{{- define "pagerduty.tbot.tokenName" -}}
{{- default (include "pagerduty.tbot.fullname" .) .Values.tbot.token }}
{{- end }}

{{/* The Secret holding the Teleport identity: teleport.identitySecretName, else tbot's output
Secret, else "<fullname>-identity" (upstream leaves it empty, which cannot be deployed). */}}
{{- define "pagerduty.identitySecretName" -}}
{{- if .Values.teleport.identitySecretName }}
{{- .Values.teleport.identitySecretName }}
{{- else if .Values.tbot.enabled }}
{{- printf "%s-out" (include "pagerduty.tbot.fullname" .) }}
{{- else }}
{{- printf "%s-identity" (include "pagerduty.fullname" .) }}
{{- end }}
{{- end }}

{{/* The key of the identity file in that Secret. */}}
{{- define "pagerduty.identitySecretPath" -}}
{{- if .Values.tbot.enabled }}
{{- "identity" }}
{{- else }}
{{- .Values.teleport.identitySecretPath }}
{{- end }}
{{- end }}

{{/* The Secret holding the PagerDuty API key. */}}
{{- define "pagerduty.apiKeySecretName" -}}
{{- coalesce .Values.pagerduty.apiKeyFromSecret (printf "%s-secret" (include "pagerduty.fullname" .)) }}
{{- end }}

{{/* The Teleport address. */}}
{{- define "pagerduty.teleportAddress" -}}
{{- coalesce .Values.teleport.address .Values.tbot.teleportProxyAddress .Values.tbot.teleportAuthAddress | default "" }}
{{- end }}

{{/* "true" when leader election is on: more than one replica, or forced. */}}
{{- define "pagerduty.leaderElection" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.leaderElection.force }}true{{ end }}
{{- end }}

{{/* The Lease name. */}}
{{- define "pagerduty.leaseName" -}}
{{- default (include "pagerduty.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Namespace of the operator custom resources. */}}
{{- define "pagerduty.crdNamespace" -}}
{{- default .Release.Namespace .Values.crd.namespace }}
{{- end }}

{{/* Where the pod mounts things. */}}
{{- define "pagerduty.configDir" -}}/etc/teleport-pagerduty{{- end }}
{{- define "pagerduty.identityDir" -}}/var/lib/teleport/plugins/pagerduty/teleport-identity{{- end }}
{{- define "pagerduty.apiKeyDir" -}}/var/lib/teleport/plugins/pagerduty/pagerduty-api-key{{- end }}
