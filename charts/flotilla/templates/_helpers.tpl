{{- define "flotilla.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flotilla.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "flotilla.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "flotilla.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "flotilla.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* "true" when replicas elect a leader through a Lease: leaderElection.enabled, or more than one replica. */}}
{{- define "flotilla.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{- define "flotilla.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flotilla.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The admission webhook: its Service, certificate Secret, cert-manager Certificate and ValidatingWebhookConfiguration. */}}
{{- define "flotilla.webhookServiceName" -}}
{{- printf "%s-webhook" (include "flotilla.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flotilla.webhookSecretName" -}}
{{- printf "%s-webhook-cert" (include "flotilla.fullname" .) | trunc 253 -}}
{{- end -}}

{{- define "flotilla.webhookCertificateName" -}}
{{- printf "%s-webhook" (include "flotilla.fullname" .) | trunc 253 -}}
{{- end -}}

{{- define "flotilla.webhookConfigName" -}}
{{- include "flotilla.fullname" . -}}
{{- end -}}

{{/* webhook.namespaceSelector plus a term that leaves out kube-system and the release namespace (JSON). */}}
{{- define "flotilla.webhookNamespaceSelector" -}}
{{- $selector := deepCopy (.Values.webhook.namespaceSelector | default dict) -}}
{{- $exclude := dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (list "kube-system" .Release.Namespace | uniq) -}}
{{- $_ := set $selector "matchExpressions" (prepend ($selector.matchExpressions | default list) $exclude) -}}
{{- toJson $selector -}}
{{- end -}}

{{- define "flotilla.memberSecretsNamespace" -}}
{{- .Values.rbac.memberSecretsNamespace | default .Release.Namespace -}}
{{- end }}
