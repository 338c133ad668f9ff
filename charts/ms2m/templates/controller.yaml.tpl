{{- /*
The controller: config/controller/deployment.yaml as it is (its comments say why each setting is
so), with the values applied. The defaults reproduce config/default (drift.test.ts).
*/ -}}
{{- $v := .Values.controller -}}
{{- $d := include "ms2m.configObject" (list $ "files/config/controller/deployment.yaml" "Deployment" "ms2m-controller") | fromYaml -}}
{{- include "ms2m.renamespace" (list $d .Release.Namespace) -}}
{{- $_ := set $d.metadata "labels" (merge (include "ms2m.labels" . | fromYaml) $d.metadata.labels) -}}
{{- $_ = set $d.spec "replicas" $v.replicas -}}
{{- $t := $d.spec.template -}}
{{- include "ms2m.podValues" (list $t $v $) -}}
{{- if $v.tolerations }}{{ $_ = set $t.spec "tolerations" $v.tolerations }}{{ end -}}
{{- $c := index $t.spec.containers 0 -}}
{{- $_ = set $c "image" (include "ms2m.controllerImage" .) -}}
{{- $_ = set $c "imagePullPolicy" $v.image.pullPolicy -}}
{{- $_ = set $c "resources" $v.resources -}}
{{- $env := list (dict "name" "LOG_LEVEL" "value" $v.logLevel) -}}
{{- /* Only when not the controller's default, as config/default leaves them. */ -}}
{{- if ne $v.checkpointMode "agent" }}{{ $env = append $env (dict "name" "CHECKPOINT_MODE" "value" $v.checkpointMode) }}{{ end -}}
{{- if ne $v.transferRunner "auto" }}{{ $env = append $env (dict "name" "MS2M_TRANSFER_RUNNER" "value" $v.transferRunner) }}{{ end -}}
{{- if not $v.manageAgentTLS }}{{ $env = append $env (dict "name" "MANAGE_AGENT_TLS" "value" "false") }}{{ end -}}
{{- /* The transfer and cleanup Jobs run the agent image (kustomize cannot write it into an env value). */ -}}
{{- $env = append $env (dict "name" "TRANSFER_JOB_IMAGE" "value" (include "ms2m.agentImage" .)) -}}
{{- with $v.insecureRegistries }}{{ $env = append $env (dict "name" "TRANSFER_JOB_INSECURE_REGISTRIES" "value" (join "," .)) }}{{ end -}}
{{- include "ms2m.setEnv" (list $c (concat $env $v.extraEnv)) -}}
{{ toYaml $d }}
