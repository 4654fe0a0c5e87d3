{{/*
Names. Every helper is namespaced "alertline." so a parent chart cannot collide with it.
*/}}
{{- define "alertline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alertline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* alertline.componentName: "<fullname>-<component>"; takes (dict "root" $ "component" name). */}}
{{- define "alertline.componentName" -}}
{{- printf "%s-%s" (include "alertline.fullname" .root | trunc 50 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alertline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* alertline.selectorLabels: immutable labels; takes (dict "root" $ "component" name-or-empty). */}}
{{- define "alertline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alertline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* alertline.labels: every resource's labels; takes (dict "root" $ "component" name-or-empty). */}}
{{- define "alertline.labels" -}}
helm.sh/chart: {{ include "alertline.chart" .root }}
{{ include "alertline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: alertline
alertline.io/environment: {{ .root.Values.environment | quote }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* alertline.serviceAccountName; takes (dict "root" $ "component" name "spec" componentValues). */}}
{{- define "alertline.serviceAccountName" -}}
{{- $sa := .spec.serviceAccount | default dict -}}
{{- if .root.Values.serviceAccount.create -}}
{{- default (include "alertline.componentName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/*
alertline.image: "<repository>:<tag>[-<variant>][@<digest>]". The tag defaults to the chart's
appVersion, so an upgrade of the chart is an upgrade of the image and nothing floats.
Takes (dict "root" $ "image" componentImageOverrides).
*/}}
{{- define "alertline.image" -}}
{{- $own := .image | default dict -}}
{{- $img := merge (dict) (deepCopy $own) (deepCopy .root.Values.image) -}}
{{- if and $own.variant (ne (toString $own.variant) (toString .root.Values.image.variant)) (not $own.digest) -}}
{{- /* Another variant is another image: the shared digest would pull the wrong one. */ -}}
{{- $_ := set $img "digest" "" -}}
{{- end -}}
{{- $tag := default .root.Chart.AppVersion $img.tag | toString -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag \"latest\" floats; pin a version (or leave empty for the chart's appVersion)" -}}
{{- end -}}
{{- if $img.variant -}}
{{- $tag = printf "%s-%s" $tag $img.variant -}}
{{- end -}}
{{- if $img.digest -}}
{{- printf "%s:%s@%s" $img.repository $tag $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* alertline.secretKeyRef: an env entry from an existing Secret; takes (dict "name" ENV "ref" {name,key}). */}}
{{- define "alertline.secretKeyRef" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | quote }}
{{- end -}}

{{/* alertline.kafkaExtra: the librdkafka pass-through map as JSON, with the CA file when one is mounted. */}}
{{- define "alertline.kafkaExtra" -}}
{{- $extra := deepCopy (.Values.kafka.extra | default dict) -}}
{{- if .Values.kafka.tls.caSecret.name -}}
{{- $_ := set $extra "ssl.ca.location" (printf "/etc/alertline/kafka-ca/%s" .Values.kafka.tls.caSecret.key) -}}
{{- end -}}
{{- toJson $extra -}}
{{- end -}}

{{/*
alertline.env: the environment of one container. Common settings first, then the component's
own, then extraEnv / env (which may override), then secret references.
Takes (dict "root" $ "component" name "spec" componentValues).
*/}}
{{- define "alertline.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $spec := .spec -}}
- name: ALERTLINE_ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: ALERTLINE_KAFKA__BOOTSTRAP
  value: {{ $v.kafka.bootstrap | quote }}
- name: ALERTLINE_KAFKA__TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: ALERTLINE_KAFKA__PARTITIONS
  value: {{ $v.kafka.partitions | quote }}
- name: ALERTLINE_KAFKA__REPLICATION
  value: {{ $v.kafka.replication | quote }}
- name: ALERTLINE_KAFKA__RETENTION_MS
  value: {{ $v.kafka.retentionMs | int64 | quote }}
- name: ALERTLINE_KAFKA__SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- with $v.kafka.sasl.mechanism }}
- name: ALERTLINE_KAFKA__SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with $v.kafka.sasl.username }}
- name: ALERTLINE_KAFKA__SASL_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if $v.kafka.sasl.passwordSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_KAFKA__SASL_PASSWORD" "ref" $v.kafka.sasl.passwordSecret) }}
{{- end }}
{{- with $v.kafka.schemaRegistry.url }}
- name: ALERTLINE_KAFKA__SCHEMA_REGISTRY_URL
  value: {{ . | quote }}
{{- end }}
{{- if $v.kafka.schemaRegistry.authSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_KAFKA__SCHEMA_REGISTRY_AUTH" "ref" $v.kafka.schemaRegistry.authSecret) }}
{{- end }}
- name: ALERTLINE_KAFKA__EXTRA
  value: {{ include "alertline.kafkaExtra" $root | quote }}
- name: ALERTLINE_RUNTIME__HTTP_PORT
  value: {{ $v.httpPort | quote }}
- name: ALERTLINE_RUNTIME__INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if eq (default "Deployment" $spec.kind) "StatefulSet" }}
{{- /* Stable pod names: a restarted replica takes its partitions back without a rebalance. */}}
- name: ALERTLINE_RUNTIME__STATIC_MEMBERSHIP
  value: "true"
{{- end }}
- name: ALERTLINE_RUNTIME__LOG_LEVEL
  value: {{ default $v.logLevel $spec.logLevel | quote }}
{{- if $v.secretFiles }}
- name: ALERTLINE_SECRETS_DIR
  value: {{ $v.secretsDir | quote }}
{{- end }}
- name: HOME
  value: /tmp
{{- if $spec.cloudCredentials }}
{{- $cloud := include "alertline.env.cloud" $root | trim }}
{{- if $cloud }}
{{ $cloud }}
{{- end }}
{{- end }}
{{- $own := include (printf "alertline.env.%s" .component) $root | trim }}
{{- if $own }}
{{ $own }}
{{- end }}
{{- range $name, $value := $v.extraEnv }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $value := ($spec.env | default dict) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $ref := $v.secretEnv }}
{{ include "alertline.secretKeyRef" (dict "name" $name "ref" $ref) }}
{{- end }}
{{- range $name, $ref := ($spec.secretEnv | default dict) }}
{{ include "alertline.secretKeyRef" (dict "name" $name "ref" $ref) }}
{{- end }}
{{- end -}}

{{/* Cloud credentials: only for workloads with cloudCredentials true. Prefer IRSA / Workload Identity. */}}
{{- define "alertline.env.cloud" -}}
{{- $c := .Values.cloud -}}
{{- with $c.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- if $c.aws.credentialsSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "AWS_ACCESS_KEY_ID" "ref" (dict "name" $c.aws.credentialsSecret.name "key" $c.aws.credentialsSecret.accessKeyIdKey)) }}
{{ include "alertline.secretKeyRef" (dict "name" "AWS_SECRET_ACCESS_KEY" "ref" (dict "name" $c.aws.credentialsSecret.name "key" $c.aws.credentialsSecret.secretAccessKeyKey)) }}
{{- end }}
{{- if $c.gcp.credentialsSecret.name }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: {{ printf "/var/run/secrets/alertline-gcp/%s" $c.gcp.credentialsSecret.key | quote }}
{{- end }}
{{- if $c.azure.credentialsSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "AZURE_CLIENT_ID" "ref" (dict "name" $c.azure.credentialsSecret.name "key" $c.azure.credentialsSecret.clientIdKey)) }}
{{ include "alertline.secretKeyRef" (dict "name" "AZURE_TENANT_ID" "ref" (dict "name" $c.azure.credentialsSecret.name "key" $c.azure.credentialsSecret.tenantIdKey)) }}
{{ include "alertline.secretKeyRef" (dict "name" "AZURE_CLIENT_SECRET" "ref" (dict "name" $c.azure.credentialsSecret.name "key" $c.azure.credentialsSecret.clientSecretKey)) }}
{{- end }}
{{- end -}}

{{/* The archive every raw delivery is written to first (ingest, scan). */}}
{{- define "alertline.env.archive" -}}
- name: ALERTLINE_ARCHIVE__BUCKET
  value: {{ .Values.archive.bucket | quote }}
- name: ALERTLINE_ARCHIVE__PREFIX
  value: {{ .Values.archive.prefix | quote }}
{{- with .Values.archive.endpointUrl }}
- name: ALERTLINE_ARCHIVE__ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "alertline.env.ingest" -}}
{{ include "alertline.env.archive" . }}
{{- $s := .Values.sources }}
{{- if $s.sqs.queues }}
- name: ALERTLINE_INGEST__SQS__QUEUE_URLS
  value: {{ values $s.sqs.queues | sortAlpha | toJson | quote }}
{{- end }}
{{- if $s.pubsub.subscriptions }}
- name: ALERTLINE_INGEST__PUBSUB__SUBSCRIPTIONS
  value: {{ values $s.pubsub.subscriptions | sortAlpha | toJson | quote }}
{{- end }}
{{- with $s.eventHubs }}
{{- if .fullyQualifiedNamespace }}
- name: ALERTLINE_INGEST__EVENTHUBS__FULLY_QUALIFIED_NAMESPACE
  value: {{ .fullyQualifiedNamespace | quote }}
- name: ALERTLINE_INGEST__EVENTHUBS__EVENTHUB_NAME
  value: {{ .eventHub | quote }}
- name: ALERTLINE_INGEST__EVENTHUBS__CONSUMER_GROUP
  value: {{ .consumerGroup | quote }}
{{- if .connectionStringSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_INGEST__EVENTHUBS__CONNECTION_STRING" "ref" .connectionStringSecret) }}
{{- end }}
{{- with .checkpointContainerUrl }}
- name: ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONTAINER_URL
  value: {{ . | quote }}
{{- end }}
{{- if .checkpointConnectionStringSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_INGEST__EVENTHUBS__CHECKPOINT_CONNECTION_STRING" "ref" .checkpointConnectionStringSecret) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "alertline.env.evaluate" -}}
- name: ALERTLINE_EVALUATE__RULES_DIR
  value: /etc/alertline/rules
- name: ALERTLINE_EVALUATE__LOOKUPS_DIR
  value: /etc/alertline/lookups
{{- end -}}

{{- define "alertline.env.enrich" -}}
{{- $e := .Values.enrich -}}
- name: ALERTLINE_ENRICH__CHROMIUM_PATH
  value: {{ $e.chromiumPath | quote }}
- name: ALERTLINE_ENRICH__RECHECK_INTERVAL_S
  value: {{ $e.recheckIntervalSeconds | quote }}
{{- if $e.screenshots.bucket }}
- name: ALERTLINE_ENRICH__SCREENSHOTS__BUCKET
  value: {{ $e.screenshots.bucket | quote }}
- name: ALERTLINE_ENRICH__SCREENSHOTS__PREFIX
  value: {{ $e.screenshots.prefix | quote }}
{{- end }}
{{- if $e.probe.allowCidrs }}
- name: ALERTLINE_ENRICH__PROBE__ALLOW_CIDRS
  value: {{ values $e.probe.allowCidrs | sortAlpha | toJson | quote }}
{{- end }}
{{- end -}}

{{- define "alertline.env.ticket" -}}
{{- $g := .Values.github -}}
- name: ALERTLINE_TICKET__SHADOW
  value: {{ .Values.ticket.shadow | toString | quote }}
- name: ALERTLINE_GITHUB__API_URL
  value: {{ $g.apiUrl | quote }}
- name: ALERTLINE_GITHUB__REPOSITORY
  value: {{ $g.repository | quote }}
{{- with $g.repositoryOverride }}
- name: ALERTLINE_GITHUB__REPOSITORY_OVERRIDE
  value: {{ . | quote }}
{{- end }}
{{- with $g.appId }}
- name: ALERTLINE_GITHUB__APP_ID
  value: {{ . | toString | quote }}
{{- end }}
{{- with $g.installationId }}
- name: ALERTLINE_GITHUB__INSTALLATION_ID
  value: {{ . | toString | quote }}
{{- end }}
{{- if $g.appPrivateKeySecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_GITHUB__APP_PRIVATE_KEY" "ref" $g.appPrivateKeySecret) }}
{{- end }}
{{- if $g.tokenSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_GITHUB__TOKEN" "ref" $g.tokenSecret) }}
{{- end }}
{{- if $g.webhookSecret.name }}
{{ include "alertline.secretKeyRef" (dict "name" "ALERTLINE_GITHUB__WEBHOOK_SECRET" "ref" $g.webhookSecret) }}
{{- end }}
{{- end -}}

{{- define "alertline.env.scan" -}}
{{ include "alertline.env.archive" . }}
{{- if .Values.scan.checks }}
- name: ALERTLINE_SCAN__CHECKS_DIR
  value: /etc/alertline/checks
{{- end }}
{{- end -}}

{{- define "alertline.env.topics" -}}
{{- end -}}

{{/*
alertline.podSpec: the one pod spec every workload uses, so the hardening cannot differ between
them. Takes (dict "root" $ "component" name "spec" componentValues "args" list "http" bool
"restartPolicy" string-or-empty).
*/}}
{{- define "alertline.podSpec" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $spec := .spec -}}
{{- $component := .component -}}
{{- if ne $component "topics" }}
serviceAccountName: {{ include "alertline.serviceAccountName" . }}
{{- end }}
automountServiceAccountToken: {{ dig "serviceAccount" "automountToken" false $spec }}
enableServiceLinks: false
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
{{- with $spec.terminationGracePeriodSeconds }}
terminationGracePeriodSeconds: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- if $v.imagePullSecrets }}
imagePullSecrets:
  {{- range $name, $on := $v.imagePullSecrets }}
  {{- if $on }}
  - name: {{ $name }}
  {{- end }}
  {{- end }}
{{- end }}
{{- with $spec.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $spec.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $spec.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $spec.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if and .http $v.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ $v.topologySpread.maxSkew }}
    topologyKey: {{ $v.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "alertline.selectorLabels" (dict "root" $root "component" $component) | nindent 8 }}
{{- end }}
containers:
  - name: {{ $component }}
    image: {{ include "alertline.image" (dict "root" $root "image" $spec.image) | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      {{- include "alertline.env" . | nindent 6 }}
    {{- if .http }}
    ports:
      - name: http
        containerPort: {{ $v.httpPort }}
        protocol: TCP
    startupProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: {{ $spec.probes.startup.periodSeconds }}
      failureThreshold: {{ $spec.probes.startup.failureThreshold }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: {{ $spec.probes.liveness.periodSeconds }}
      timeoutSeconds: {{ $spec.probes.liveness.timeoutSeconds }}
      failureThreshold: {{ $spec.probes.liveness.failureThreshold }}
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: {{ $spec.probes.readiness.periodSeconds }}
      timeoutSeconds: {{ $spec.probes.readiness.timeoutSeconds }}
      failureThreshold: {{ $spec.probes.readiness.failureThreshold }}
    {{- end }}
    resources:
      {{- toYaml $spec.resources | nindent 6 }}
    securityContext:
      {{- toYaml $v.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if eq $component "enrich" }}
      - name: shm
        mountPath: /dev/shm
      {{- end }}
      {{- if eq $component "evaluate" }}
      - name: rules
        mountPath: /etc/alertline/rules
        readOnly: true
      - name: lookups
        mountPath: /etc/alertline/lookups
        readOnly: true
      {{- end }}
      {{- if and (eq $component "scan") $v.scan.checks }}
      - name: checks
        mountPath: /etc/alertline/checks
        readOnly: true
      {{- end }}
      {{- if $v.kafka.tls.caSecret.name }}
      - name: kafka-ca
        mountPath: /etc/alertline/kafka-ca
        readOnly: true
      {{- end }}
      {{- if $v.secretFiles }}
      - name: secret-files
        mountPath: {{ $v.secretsDir }}
        readOnly: true
      {{- end }}
      {{- if and $spec.cloudCredentials $v.cloud.gcp.credentialsSecret.name }}
      - name: gcp-credentials
        mountPath: /var/run/secrets/alertline-gcp
        readOnly: true
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $spec.tmpSizeLimit | default "64Mi" }}
  {{- if eq $component "enrich" }}
  - name: shm
    emptyDir:
      medium: Memory
      sizeLimit: {{ $spec.shmSizeLimit | default "256Mi" }}
  {{- end }}
  {{- if eq $component "evaluate" }}
  - name: rules
    configMap:
      name: {{ default (include "alertline.componentName" (dict "root" $root "component" "rules")) $v.rules.existingConfigMap }}
  - name: lookups
    configMap:
      name: {{ default (include "alertline.componentName" (dict "root" $root "component" "lookups")) $v.lookups.existingConfigMap }}
  {{- end }}
  {{- if and (eq $component "scan") $v.scan.checks }}
  - name: checks
    configMap:
      name: {{ include "alertline.componentName" (dict "root" $root "component" "checks") }}
  {{- end }}
  {{- if $v.kafka.tls.caSecret.name }}
  - name: kafka-ca
    secret:
      secretName: {{ $v.kafka.tls.caSecret.name }}
      items:
        - key: {{ $v.kafka.tls.caSecret.key }}
          path: {{ $v.kafka.tls.caSecret.key }}
  {{- end }}
  {{- if $v.secretFiles }}
  - name: secret-files
    projected:
      sources:
        {{- range $label, $f := $v.secretFiles }}
        - secret:
            name: {{ $f.secretName }}
            {{- if $f.items }}
            items:
              {{- range $key, $path := $f.items }}
              - key: {{ $key }}
                path: {{ $path }}
              {{- end }}
            {{- end }}
        {{- end }}
  {{- end }}
  {{- if and $spec.cloudCredentials $v.cloud.gcp.credentialsSecret.name }}
  - name: gcp-credentials
    secret:
      secretName: {{ $v.cloud.gcp.credentialsSecret.name }}
      items:
        - key: {{ $v.cloud.gcp.credentialsSecret.key }}
          path: {{ $v.cloud.gcp.credentialsSecret.key }}
  {{- end }}
{{- end -}}

{{/* alertline.networkPeers: the peers of one target (cidrs + selectors) as a JSON list of NetworkPolicy peers. */}}
{{- define "alertline.networkPeers" -}}
{{- $peers := list -}}
{{- range $label, $c := (.cidrs | default dict) -}}
{{- if kindIs "string" $c -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" $c)) -}}
{{- else -}}
{{- $block := dict "cidr" $c.cidr -}}
{{- if $c.except -}}
{{- $_ := set $block "except" (values $c.except | sortAlpha) -}}
{{- end -}}
{{- $peers = append $peers (dict "ipBlock" $block) -}}
{{- end -}}
{{- end -}}
{{- range $label, $s := (.selectors | default dict) -}}
{{- $peers = append $peers $s -}}
{{- end -}}
{{- toJson $peers -}}
{{- end -}}

{{/* alertline.ports: a ports map (label -> number) as a JSON list for the given protocols. */}}
{{- define "alertline.ports" -}}
{{- $out := list -}}
{{- range $proto := .protocols -}}
{{- range $label, $port := ($.ports | default dict) -}}
{{- $out = append $out (dict "port" (int $port) "protocol" $proto) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* alertline.egressRule: one egress rule (YAML list of one) for a target; takes (dict "target" t "protocols" list). */}}
{{- define "alertline.egressRule" -}}
{{- $rule := dict -}}
{{- $peers := include "alertline.networkPeers" .target | fromJsonArray -}}
{{- if $peers -}}
{{- $_ := set $rule "to" $peers -}}
{{- end -}}
{{- $ports := include "alertline.ports" (dict "ports" .target.ports "protocols" .protocols) | fromJsonArray -}}
{{- if $ports -}}
{{- $_ := set $rule "ports" $ports -}}
{{- end -}}
{{- toYaml (list $rule) -}}
{{- end -}}

{{/* alertline.ingressRule: one ingress rule to the HTTP port from the given peers map (empty = any source). */}}
{{- define "alertline.ingressRule" -}}
{{- $rule := dict "ports" (list (dict "port" "http" "protocol" "TCP")) -}}
{{- $peers := include "alertline.networkPeers" (dict "selectors" .) | fromJsonArray -}}
{{- if $peers -}}
{{- $_ := set $rule "from" $peers -}}
{{- end -}}
{{- toYaml (list $rule) -}}
{{- end -}}

{{/* alertline.workloads: the long-running workloads and the scanner that are rendered, as a JSON list of names. */}}
{{- define "alertline.workloads" -}}
{{- $out := list -}}
{{- range $name, $svc := .Values.services -}}
{{- if $svc.enabled -}}
{{- $out = append $out $name -}}
{{- end -}}
{{- end -}}
{{- if and .Values.scan.enabled .Values.scan.jobs -}}
{{- $out = append $out "scan" -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}


{{/*
alertline.servicePodTemplate: the pod template of a long-running service, shared by the
Deployment and the StatefulSet form. Takes (dict "root" $ "component" name "spec" serviceValues).
*/}}
{{- define "alertline.servicePodTemplate" -}}
{{- $root := .root -}}
{{- $name := .component -}}
{{- $svc := .spec -}}
{{- $annotations := dict -}}
{{- if eq $name "evaluate" -}}
{{- /* Rules and lookups are mounted files: a change rolls the pods so every replica runs the same set. */ -}}
{{- $_ := set $annotations "checksum/rules" (include (print $root.Template.BasePath "/configmap-rules.yaml") $root | sha256sum) -}}
{{- $_ := set $annotations "checksum/lookups" (include (print $root.Template.BasePath "/configmap-lookups.yaml") $root | sha256sum) -}}
{{- end -}}
{{- $annotations = merge $annotations ($svc.podAnnotations | default dict) -}}
metadata:
  labels:
    {{- include "alertline.labels" (dict "root" $root "component" $name) | nindent 4 }}
    {{- with $svc.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- include "alertline.podSpec" (dict "root" $root "component" $name "spec" $svc "args" (list "run" $name) "http" true) | trim | nindent 2 }}
{{- end -}}
