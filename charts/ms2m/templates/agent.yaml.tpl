{{- /*
The node agent: config/agent/daemonset.yaml as it is (its comments say why each setting is so),
with the values applied. The defaults reproduce config/default (drift.test.ts).
*/ -}}
{{- $v := .Values.agent -}}
{{- $d := include "ms2m.configObject" (list $ "files/config/agent/daemonset.yaml" "DaemonSet" "ms2m-agent") | fromYaml -}}
{{- include "ms2m.renamespace" (list $d .Release.Namespace) -}}
{{- $_ := set $d.metadata "labels" (merge (include "ms2m.labels" . | fromYaml) $d.metadata.labels) -}}
{{- $t := $d.spec.template -}}
{{- include "ms2m.podValues" (list $t $v $) -}}
{{- $_ = set $t.spec "tolerations" $v.tolerations -}}
{{- if not $v.tolerations }}{{ $_ = unset $t.spec "tolerations" }}{{ end -}}
{{- $c := index $t.spec.containers 0 -}}
{{- $_ = set $c "image" (include "ms2m.agentImage" .) -}}
{{- $_ = set $c "imagePullPolicy" $v.image.pullPolicy -}}
{{- $_ = set $c "resources" $v.resources -}}
{{- $env := list
  (dict "name" "AGENT_STORAGE_DRIVER" "value" $v.storage.driver)
  (dict "name" "AGENT_STORAGE_GRAPHROOT" "value" $v.storage.graphRoot)
  (dict "name" "AGENT_STORAGE_RUNROOT" "value" $v.storage.runRoot)
  (dict "name" "AGENT_KUBELET_URL" "value" $v.kubelet.url)
  (dict "name" "LOG_LEVEL" "value" $v.logLevel) -}}
{{- with $v.kubelet.caFile }}{{ $env = append $env (dict "name" "AGENT_KUBELET_CA_FILE" "value" .) }}{{ end -}}
{{- with $v.insecureRegistries }}{{ $env = append $env (dict "name" "AGENT_INSECURE_REGISTRIES" "value" (join "," .)) }}{{ end -}}
{{- include "ms2m.setEnv" (list $c (concat $env $v.extraEnv)) -}}
{{- /* containers-storage where the node's CRI-O keeps it: the same path on the host and inside. */ -}}
{{- $paths := dict "storage-graph" $v.storage.graphRoot "storage-run" $v.storage.runRoot -}}
{{- range $m := $c.volumeMounts }}{{ if hasKey $paths $m.name }}{{ $_ := set $m "mountPath" (get $paths $m.name) }}{{ end }}{{ end -}}
{{- range $vol := $t.spec.volumes }}{{ if hasKey $paths $vol.name }}{{ $_ := set $vol.hostPath "path" (get $paths $vol.name) }}{{ end }}{{ end -}}
{{ toYaml $d }}
