{{/* The image both workloads run: repository:tag, the tag defaulting to the appVersion. */}}
{{- define "csi-vso.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Labels of one component's objects: its name, then the user's commonLabels. */}}
{{- define "csi-vso.labels" -}}
app.kubernetes.io/name: {{ .name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: csi-vso
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- with .extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metadata of one object: name, namespace (when given), the component's labels and the
user's commonAnnotations. Arguments: root, objName, namespace, name (app.kubernetes.io/name),
component and extraLabels (optional).
*/}}
{{- define "csi-vso.meta" -}}
name: {{ .objName }}
{{- with .namespace }}
namespace: {{ . }}
{{- end }}
labels:
  {{- include "csi-vso.labels" . | nindent 2 }}
{{- with .root.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
