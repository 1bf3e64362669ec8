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

{{/* The username the operator's own requests come as. */}}
{{- define "aws-auth-operator.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "aws-auth-operator.serviceAccountName" .) -}}
{{- end -}}

{{/* The webhook rules, shared by the operator's registration and the cert-manager variant. */}}
{{- define "aws-auth-operator.webhookRules" -}}
- name: aws-auth.aws-auth.dev
  clientConfig:
    service:
      namespace: {{ .Release.Namespace }}
      name: {{ include "aws-auth-operator.fullname" . }}
      port: 443
      path: /validate/aws-auth
  rules:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE, UPDATE, DELETE], scope: Namespaced}
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: {{ .Values.awsAuth.namespace }}}
  matchConditions:
    {{- $names := printf "['%s', '%s']" .Values.awsAuth.name (include "aws-auth-operator.historyName" .) }}
    - name: aws-auth-and-history-only
      expression: "(object != null && object.metadata.name in {{ $names }}) || (oldObject != null && oldObject.metadata.name in {{ $names }})"
  failurePolicy: {{ .Values.webhook.failurePolicy }}
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
- name: grants.aws-auth.dev
  clientConfig:
    service:
      namespace: {{ .Release.Namespace }}
      name: {{ include "aws-auth-operator.fullname" . }}
      port: 443
      path: /validate/grants
  rules:
    - {apiGroups: [aws-auth.dev], apiVersions: [v1alpha1], resources: [iamaccessgrants], operations: [CREATE, UPDATE], scope: Cluster}
  failurePolicy: {{ .Values.webhook.failurePolicy }}
  sideEffects: NoneOnDryRun
  admissionReviewVersions: [v1]
  timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
{{- end -}}

{{/* The Secret the replicas share the webhook's self-made CA and certificate through. */}}
{{- define "aws-auth-operator.certSecret" -}}
{{- printf "%s-webhook-certs" (include "aws-auth-operator.fullname" .) -}}
{{- end -}}
