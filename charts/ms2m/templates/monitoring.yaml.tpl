{{- if .Values.metrics.serviceMonitor.enabled }}
{{- /* config/prometheus/servicemonitor.yaml */}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: ms2m
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
    {{- with .Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchExpressions:
      - key: app.kubernetes.io/name
        operator: In
        values: ["ms2m-controller", "ms2m-agent"]
  endpoints:
    - port: metrics
      interval: {{ .Values.metrics.serviceMonitor.interval }}
    # The agents serve /metrics on their TLS port (no token needed for /metrics).
    - port: https
      scheme: https
      interval: {{ .Values.metrics.serviceMonitor.interval }}
      tlsConfig:
        insecureSkipVerify: false
        ca:
          secret:
            name: ms2m-agent-tls
            key: ca.crt
        serverName: ms2m-agent
{{- end }}
{{- if .Values.metrics.prometheusRule.enabled }}
{{- /* The rules of config/prometheus/prometheusrule.yaml as they are: read as data, so the template syntax in their annotations is left to Prometheus. */}}
{{- $rule := .Files.Get "files/config/prometheus/prometheusrule.yaml" | fromYaml }}
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ $rule.metadata.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
    {{- with .Values.metrics.prometheusRule.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- toYaml $rule.spec | nindent 2 }}
{{- end }}
{{- if .Values.grafana.dashboard.enabled }}
---
{{- /* config/grafana: the dashboard for Grafana's sidecar. */}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: ms2m-grafana-dashboard
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
    {{- with .Values.grafana.dashboard.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.grafana.dashboard.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
data:
  ms2m-dashboard.json: |
    {{- .Files.Get "files/config/grafana/ms2m-dashboard.json" | nindent 4 }}
{{- end }}
