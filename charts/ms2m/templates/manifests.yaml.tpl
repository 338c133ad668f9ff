{{- /*
Everything of config/default that has no values, as its kustomizations list it: the CRDs (crd/),
ServiceAccounts and RBAC (config/rbac), the metrics Services, and whatever config/default gains
later. The controller Deployment and the agent DaemonSet are templates (controller.yaml.tpl,
agent.yaml.tpl); the Namespace is Helm's release namespace.
*/ -}}
{{- include "ms2m.kustomization" (dict "root" $ "dir" "files/config/default") }}
{{- /* nodes/proxy for the controller: only with a checkpoint mode that uses the node proxy. */ -}}
{{- if has .Values.controller.checkpointMode (list "auto" "node-proxy") }}
{{- include "ms2m.kustomization" (dict "root" $ "dir" "files/config/components/node-proxy-fallback") }}
{{- end }}
