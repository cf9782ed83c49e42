{{/*
Names. With the release named cluster-discovery (as the seed installs it),
the fullname is cluster-discovery and the objects get the names the seed
uses: cluster-discovery-controller-manager,
cluster-discovery-controller-manager-metrics-service.
*/}}
{{- define "cluster-discovery.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cluster-discovery.fullname" -}}
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

{{- define "cluster-discovery.managerName" -}}
{{- printf "%s-controller-manager" (include "cluster-discovery.fullname" .) }}
{{- end }}

{{/*
A Service name is a DNS label (at most 63 characters): the fullname is cut
so that the suffix the seed's URL needs survives.
*/}}
{{- define "cluster-discovery.metricsServiceName" -}}
{{- $suffix := "-controller-manager-metrics-service" }}
{{- printf "%s%s" (include "cluster-discovery.fullname" . | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "cluster-discovery.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cluster-discovery.labels" -}}
helm.sh/chart: {{ include "cluster-discovery.chart" . }}
{{ include "cluster-discovery.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cluster-discovery
{{- end }}

{{- define "cluster-discovery.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cluster-discovery.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "cluster-discovery.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cluster-discovery.managerName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cluster-discovery.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The Secret holding the default network's key, or "" when the operator's
built-in default key is used.
*/}}
{{- define "cluster-discovery.defaultSwarmKeySecret" -}}
{{- $key := .Values.defaultNetwork.swarmKey }}
{{- if $key.existingSecret }}
{{- $key.existingSecret }}
{{- else if or $key.value $key.generate }}
{{- printf "%s-default-swarm-key" (include "cluster-discovery.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The variables every watches.yaml entry passes to its role (operator-sdk's
`vars`): what the roles need from the chart's values.
*/}}
{{- define "cluster-discovery.watchVars" -}}
{{- $vars := dict
  "identity_rbac_rules" .Values.rbac.rules
  "identity_offline_after_seconds" .Values.offlineAfter
  "swarmpool_default_bootstrap_node_addresses" .Values.defaultNetwork.bootstrapNodeAddresses
}}
{{- $secret := include "cluster-discovery.defaultSwarmKeySecret" . }}
{{- if $secret }}
{{- $_ := set $vars "swarmpool_default_swarm_key_secret" (dict "name" $secret "namespace" .Release.Namespace "key" "swarm-key") }}
{{- end }}
{{- toYaml $vars }}
{{- end }}
