{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, overridable with nameOverride; 63 characters at most (a label value). */}}
{{- define "jenkins-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of the release's objects: fullnameOverride, else the release name when it already
contains the chart name (release `jenkins-operator` gives `jenkins-operator`), else
`<release>-<chart>`. Truncated to 63 characters, the longest DNS label.
*/}}
{{- define "jenkins-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The name of the release's cluster-scoped objects (ClusterRole, ClusterRoleBinding):
`<release namespace>:<fullname>`. Releases in different namespaces may have the same fullname (the
same release name gives the same fullname), but cluster-scoped names are shared by the whole
cluster. A namespace never contains `:`, so no two (namespace, fullname) pairs give one name.
*/}}
{{- define "jenkins-operator.clusterScopedName" -}}
{{- printf "%s:%s" .Release.Namespace (include "jenkins-operator.fullname" .) }}
{{- end }}

{{/* `helm.sh/chart`: chart name and version. */}}
{{- define "jenkins-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; an upgrade must keep them (selectors are immutable). */}}
{{- define "jenkins-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jenkins-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "jenkins-operator.labels" -}}
helm.sh/chart: {{ include "jenkins-operator.chart" . }}
{{ include "jenkins-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "jenkins-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jenkins-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.create is false: set serviceAccount.name" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image, tag defaulting to the chart's appVersion. */}}
{{- define "jenkins-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The RBAC rules, from files/rbac-rules.yaml (the one place they are written). */}}
{{- define "jenkins-operator.rbacRules" -}}
{{- .Files.Get "files/rbac-rules.yaml" }}
{{- end }}

{{/*
The Lease used for leader election. Fixed, not a value: the lease Role in files/rbac-rules.yaml
names it, and one operator per namespace needs no other name.
*/}}
{{- define "jenkins-operator.leaseName" -}}
jenkins-operator
{{- end }}
