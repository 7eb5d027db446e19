{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "flotilla.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. A release named like the chart ("flotilla") gives "flotilla", not
"flotilla-flotilla".
*/}}
{{- define "flotilla.fullname" -}}
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
"name-version" for the helm.sh/chart label.
*/}}
{{- define "flotilla.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels, on every object.
*/}}
{{- define "flotilla.labels" -}}
helm.sh/chart: {{ include "flotilla.chart" . }}
{{ include "flotilla.selectorLabels" . }}
app.kubernetes.io/version: {{ include "flotilla.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flotilla
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so only name and instance.
*/}}
{{- define "flotilla.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator version: the image tag, or the chart's appVersion.
*/}}
{{- define "flotilla.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The container image: repository:tag, or repository@digest when a digest is given.
*/}}
{{- define "flotilla.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "flotilla.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flotilla.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The metrics / health listen address, built from metrics.port.
*/}}
{{- define "flotilla.metricsAddr" -}}
{{- printf "0.0.0.0:%d" (int .Values.metrics.port) }}
{{- end }}

{{/*
Whether a PodDisruptionBudget is rendered: enabled, and more than one replica (with one replica,
minAvailable 1 would block every node drain).
*/}}
{{- define "flotilla.pdbEnabled" -}}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicas) 1) }}true{{- end }}
{{- end }}

{{/*
The PodDisruptionBudget apiVersion the server serves: policy/v1 (Kubernetes >= 1.21), else
policy/v1beta1 (1.20 and older). Against a cluster Helm lists "group/version/Kind" entries from
discovery; offline (helm template, helm lint) its built-in list has only "group/version", so check
both. policy/v1 first appeared (in 1.21) together with PodDisruptionBudget.
*/}}
{{- define "flotilla.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (.Capabilities.APIVersions.Has "policy/v1") }}policy/v1{{- else }}policy/v1beta1{{- end }}
{{- end }}

{{/*
The federated kinds as the operator's --federated-kinds: Kind.group, or Kind for the core group.
*/}}
{{- define "flotilla.federatedKinds" -}}
{{- $kinds := list }}
{{- range .Values.federatedKinds }}
{{- if .group }}{{ $kinds = append $kinds (printf "%s.%s" .kind .group) }}{{ else }}{{ $kinds = append $kinds .kind }}{{ end }}
{{- end }}
{{- join "," $kinds }}
{{- end }}
