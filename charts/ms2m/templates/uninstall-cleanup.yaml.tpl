{{- /*
After `helm uninstall` (post-delete hook): deletes what the controller made at run time in the
release namespace (files/uninstall-cleanup.mjs). Its ServiceAccount, Role and binding are hooks too,
created just before it and deleted with it once it succeeded.
*/ -}}
{{- if .Values.cleanupOnUninstall }}
{{- $c := .Values.controller -}}
{{- /* The Secrets the controller issues: those its Role in config/rbac may update by name. */ -}}
{{- $role := include "ms2m.configObject" (list $ "files/config/rbac/controller-role.yaml" "Role" "ms2m-controller") | fromYaml -}}
{{- $secrets := list -}}
{{- range $rule := $role.rules }}{{ if has "secrets" $rule.resources }}{{ $secrets = concat $secrets (default list $rule.resourceNames) }}{{ end }}{{ end -}}
{{- $secrets = uniq $secrets -}}
{{- $hook := dict "helm.sh/hook" "post-delete" "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ms2m-uninstall
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
  annotations:
    {{- toYaml (merge (dict "helm.sh/hook-weight" "-10") $hook) | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: ms2m-uninstall
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
  annotations:
    {{- toYaml (merge (dict "helm.sh/hook-weight" "-10") $hook) | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{ toJson $secrets }}
    verbs: ["delete"]
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    resourceNames: ["ms2m-controller"]
    verbs: ["delete"]
  - apiGroups: ["batch"]
    resources: ["jobs"]
    verbs: ["list", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: ms2m-uninstall
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
  annotations:
    {{- toYaml (merge (dict "helm.sh/hook-weight" "-10") $hook) | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: ms2m-uninstall
subjects:
  - kind: ServiceAccount
    name: ms2m-uninstall
    namespace: {{ .Release.Namespace }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ms2m-uninstall
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
  annotations:
    {{- toYaml (merge (dict "helm.sh/hook-weight" "-10") $hook) | nindent 4 }}
data:
  cleanup.mjs: |-
    {{- .Files.Get "files/uninstall-cleanup.mjs" | nindent 4 }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: ms2m-uninstall
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "ms2m.labels" . | nindent 4 }}
  annotations:
    {{- toYaml (merge (dict "helm.sh/hook-weight" "0") $hook) | nindent 4 }}
spec:
  backoffLimit: 2
  activeDeadlineSeconds: 180
  template:
    metadata:
      labels:
        app.kubernetes.io/name: ms2m-uninstall
        app.kubernetes.io/part-of: ms2m
    spec:
      serviceAccountName: ms2m-uninstall
      restartPolicy: Never
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: cleanup
          image: {{ include "ms2m.controllerImage" . }}
          imagePullPolicy: {{ $c.image.pullPolicy }}
          command: ["node", "/hook/cleanup.mjs"]
          env:
            - name: NODE_EXTRA_CA_CERTS
              value: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
            - name: MS2M_SECRETS
              value: {{ join "," $secrets | quote }}
            - name: MS2M_LEASES
              value: ms2m-controller
            - name: MS2M_JOB_SELECTOR
              value: app.kubernetes.io/name=ms2m-transfer
          resources:
            requests:
              cpu: 10m
              memory: 32Mi
            limits:
              memory: 128Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: hook
              mountPath: /hook
              readOnly: true
      volumes:
        - name: hook
          configMap:
            name: ms2m-uninstall
{{- end }}
