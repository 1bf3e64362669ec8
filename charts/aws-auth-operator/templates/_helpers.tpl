{{- define "aws-auth-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aws-auth-operator.serviceAccountName" -}}
{{- default (include "aws-auth-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "aws-auth-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aws-auth-operator.labels" -}}
{{ include "aws-auth-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The ConfigMap that keeps aws-auth's history. */}}
{{- define "aws-auth-operator.historyName" -}}
{{- .Values.history.name | default (printf "%s-history" .Values.awsAuth.name) -}}
{{- end -}}
