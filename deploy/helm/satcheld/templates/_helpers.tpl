{{- define "satcheld.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "satcheld.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "satcheld.labels" -}}
{{ include "satcheld.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The chart refuses to render a gRPC port without TLS, or without a way to authenticate callers. */}}
{{- define "satcheld.checks" -}}
{{- $_ := required "tls.secretName: the gRPC Service never speaks plain TCP; name a kubernetes.io/tls Secret" .Values.tls.secretName -}}
{{- if and (not .Values.auth.tokenSecretName) (not .Values.tls.clientCASecretName) -}}
{{- fail "callers must authenticate: set auth.tokenSecretName (a token) or tls.clientCASecretName (mTLS)" -}}
{{- end -}}
{{- if not (has .Values.storage.type (list "emptyDir" "pvc")) -}}
{{- fail "storage.type is emptyDir or pvc" -}}
{{- end -}}
{{- end -}}
