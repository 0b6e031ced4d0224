{{/* The release's resource name: <release>-credit-risk, or the release name alone when it
already says credit-risk. */}}
{{- define "credit-risk.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "credit-risk.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "credit-risk.labels" -}}
{{ include "credit-risk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "credit-risk.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The Secret the pods read: an existing one, or the chart's own (when it has a value). */}}
{{- define "credit-risk.secretName" -}}
{{- .Values.secret.existingSecret | default (include "credit-risk.fullname" .) -}}
{{- end -}}

{{- define "credit-risk.ownSecret" -}}
{{- if and (not .Values.secret.existingSecret) (or .Values.secret.mlflowTrackingUri .Values.secret.feedbackToken) -}}
true
{{- end -}}
{{- end -}}

{{- define "credit-risk.hasTrackingUri" -}}
{{- if or .Values.secret.existingSecret .Values.secret.mlflowTrackingUri -}}
true
{{- end -}}
{{- end -}}

{{- define "credit-risk.hasFeedbackToken" -}}
{{- if or .Values.secret.existingSecret .Values.secret.feedbackToken -}}
true
{{- end -}}
{{- end -}}

{{/* The follower runs when asked for and MLflow can be found. */}}
{{- define "credit-risk.follows" -}}
{{- if and .Values.follower.enabled (include "credit-risk.hasTrackingUri" .) -}}
true
{{- end -}}
{{- end -}}

{{/* The same restrictions for every container: non-root (the images' uid 10001), read-only
root, no privilege escalation, no capability. */}}
{{- define "credit-risk.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}
