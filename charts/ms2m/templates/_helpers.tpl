{{/*
Labels on every object. app.kubernetes.io/part-of is what config/default puts on every object;
the others are Helm's. Object names are fixed (ms2m-controller, ms2m-agent, ...): the controller
finds the agents, their Secret and its Lease by those names, and ms2m is installed once per
cluster (its CRDs and ClusterRoles are cluster-wide).
*/}}
{{- define "ms2m.labels" -}}
app.kubernetes.io/part-of: ms2m
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* An image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "ms2m.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "ms2m.controllerImage" -}}
{{- include "ms2m.image" (list .Values.controller.image .) -}}
{{- end -}}

{{- define "ms2m.agentImage" -}}
{{- include "ms2m.image" (list .Values.agent.image .) -}}
{{- end -}}

{{/*
The objects of a kustomization folder under files/ (files/config and files/crd link to the
repository's config/ and crd/), recursively, in the order its kustomization.yaml lists them: one
source of truth for everything that has no values. Only `resources` are read (the chart does the
namespace and labels itself; patches and generators are not interpreted: the drift test,
test/component/charts/drift.test.ts, would show one). Objects rendered by the chart's templates
instead (the controller Deployment, the agent DaemonSet) and the Namespace are left out.
Arguments: (dict "root" $ "dir" "files/config/default").
*/}}
{{- define "ms2m.kustomization" -}}
{{- $k := .root.Files.Get (printf "%s/kustomization.yaml" .dir) | fromYaml -}}
{{- if not $k.resources }}{{ fail (printf "%s/kustomization.yaml is missing or lists no resources (files/config and files/crd link to config/ and crd/)" .dir) }}{{ end -}}
{{- range $r := $k.resources }}
{{- $path := clean (printf "%s/%s" $.dir $r) -}}
{{- if or (hasSuffix ".yaml" $path) (hasSuffix ".yml" $path) }}
{{- include "ms2m.fileObjects" (dict "root" $.root "path" $path) }}
{{- else }}
{{- include "ms2m.kustomization" (dict "root" $.root "dir" $path) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Kinds/names the chart renders from templates (with values) rather than from config/. */}}
{{- define "ms2m.templated" -}}
Deployment/ms2m-controller DaemonSet/ms2m-agent
{{- end -}}

{{/*
The YAML documents of one file, moved to the release namespace (every `namespace: ms2m-system`,
as kustomize's namespace transformer: metadata, RoleBinding subjects, webhook services) and
labelled. CRDs follow crds.install and crds.keep. Arguments: (dict "root" $ "path" "files/...").
*/}}
{{- define "ms2m.fileObjects" -}}
{{- $root := .root -}}
{{- $path := .path -}}
{{- $text := $root.Files.Get $path -}}
{{- if not $text }}{{ fail (printf "%s is missing from the chart (files/config and files/crd link to config/ and crd/)" $path) }}{{ end -}}
{{- $templated := splitList " " (include "ms2m.templated" $root) -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $text -1 }}
{{- $obj := fromYaml $doc -}}
{{- if hasKey $obj "Error" }}{{ fail (printf "%s: %s" $path $obj.Error) }}{{ end -}}
{{- $isCrd := eq (default "" $obj.kind) "CustomResourceDefinition" -}}
{{- if and $obj.kind (ne $obj.kind "Namespace") (not (has (printf "%s/%s" $obj.kind $obj.metadata.name) $templated)) (or (not $isCrd) $root.Values.crds.install) }}
{{- $meta := $obj.metadata -}}
{{- if not $isCrd }}{{ include "ms2m.renamespace" (list $obj $root.Release.Namespace) }}{{ end -}}
{{- $_ := set $meta "labels" (merge (include "ms2m.labels" $root | fromYaml) (default dict $meta.labels)) -}}
{{- if and $isCrd $root.Values.crds.keep }}{{ $_ := set $meta "annotations" (merge (default dict $meta.annotations) (dict "helm.sh/resource-policy" "keep")) }}{{ end }}
---
# Source: {{ trimPrefix "files/" $path }}
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Sets every `namespace: ms2m-system` in a parsed object to the given namespace. (list $obj $ns) */}}
{{- define "ms2m.renamespace" -}}
{{- $v := index . 0 -}}
{{- $ns := index . 1 -}}
{{- if kindIs "map" $v -}}
{{- range $k, $x := $v -}}
{{- if and (eq $k "namespace") (kindIs "string" $x) (eq (toString $x) "ms2m-system") -}}
{{- $_ := set $v $k $ns -}}
{{- else if or (kindIs "map" $x) (kindIs "slice" $x) -}}
{{- include "ms2m.renamespace" (list $x $ns) -}}
{{- end -}}
{{- end -}}
{{- else if kindIs "slice" $v -}}
{{- range $x := $v }}{{ include "ms2m.renamespace" (list $x $ns) }}{{ end -}}
{{- end -}}
{{- end -}}

{{/*
One object of a config/ file, parsed (the chart's values are then applied to it).
Arguments: (list $ "files/config/controller/deployment.yaml" "Deployment" "ms2m-controller").
*/}}
{{- define "ms2m.configObject" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
{{- $found := dict -}}
{{- range $doc := regexSplit "(?m)^---[ \\t]*$" ($root.Files.Get $path) -1 }}
{{- $obj := fromYaml $doc -}}
{{- if and (eq (default "" $obj.kind) (index $ 2)) (eq (default "" (dig "metadata" "name" "" $obj)) (index $ 3)) }}{{ $found = $obj }}{{ end -}}
{{- end }}
{{- if not $found.kind }}{{ fail (printf "%s has no %s %s (files/config links to config/)" $path (index . 2) (index . 3)) }}{{ end -}}
{{- toYaml $found -}}
{{- end -}}

{{/*
A container's env with variables set: an existing variable gets the new value in its place, a new
one goes at the end, in the order given. (list $container (list (dict "name" .. "value" ..) ...))
*/}}
{{- define "ms2m.setEnv" -}}
{{- $c := index . 0 -}}
{{- $new := index . 1 -}}
{{- $byName := dict -}}
{{- range $e := $new }}{{ $_ := set $byName $e.name $e }}{{ end -}}
{{- $out := list -}}
{{- $seen := dict -}}
{{- range $x := default list $c.env }}
{{- if hasKey $byName $x.name }}{{ $out = append $out (get $byName $x.name) }}{{ else }}{{ $out = append $out $x }}{{ end -}}
{{- $_ := set $seen $x.name true -}}
{{- end }}
{{- range $e := $new }}
{{- if not (hasKey $seen $e.name) }}{{ $out = append $out (get $byName $e.name) }}{{ $_ := set $seen $e.name true }}{{ end -}}
{{- end }}
{{- $_ := set $c "env" $out -}}
{{- end -}}

{{/* The pod-level values both workloads take: pull secrets, node selection, priority, labels, annotations. (list $podTemplate $values $root) */}}
{{- define "ms2m.podValues" -}}
{{- $t := index . 0 -}}
{{- $v := index . 1 -}}
{{- $root := index . 2 -}}
{{- $spec := $t.spec -}}
{{- with $v.podLabels }}{{ $_ := set $t.metadata "labels" (merge (deepCopy .) $t.metadata.labels) }}{{ end -}}
{{- with $v.podAnnotations }}{{ $_ := set $t.metadata "annotations" (merge (deepCopy .) (default dict $t.metadata.annotations)) }}{{ end -}}
{{- with $root.Values.imagePullSecrets }}{{ $_ := set $spec "imagePullSecrets" . }}{{ end -}}
{{- if $v.nodeSelector }}{{ $_ := set $spec "nodeSelector" $v.nodeSelector }}{{ end -}}
{{- if $v.affinity }}{{ $_ := set $spec "affinity" $v.affinity }}{{ end -}}
{{- if $v.priorityClassName }}{{ $_ := set $spec "priorityClassName" $v.priorityClassName }}{{ end -}}
{{- end -}}
