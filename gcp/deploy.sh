#!/usr/bin/env bash
# Deploys Warden on Google Cloud:
#   - the image (Cloud Build from gcp/Dockerfile) in Artifact Registry;
#   - the Cloud Run service `warden` (gcp/service.yaml): HTTP API + Pub/Sub push + CloudEvents;
#   - topics: requests (push → the service), events (Eventarc → the service), batch (pull
#     worker), results, dead letters;
#   - a push subscription with OIDC auth (--push-auth-service-account, --push-auth-token-audience;
#     the service verifies the token: WARDEN_PUSH_AUDIENCE, WARDEN_PUSH_SERVICE_ACCOUNT), a retry
#     policy and a dead-letter policy;
#   - an Eventarc trigger (Pub/Sub messagePublished → /pubsub/push);
#   - the pull worker as a Cloud Run job (gcp/worker-job.yaml).
# Usage: PROJECT_ID=my-proj REGION=us-central1 gcp/deploy.sh
# Idempotent: existing resources are updated or left as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROJECT_ID:?set PROJECT_ID}"
REGION=${REGION:-us-central1}
REPO=${REPO:-warden}
IMAGE=${IMAGE:-$REGION-docker.pkg.dev/$PROJECT_ID/$REPO/warden-gcp:$(git rev-parse --short HEAD 2>/dev/null || echo latest)}
RUN_SA=${RUN_SA:-warden-run@$PROJECT_ID.iam.gserviceaccount.com}
PUSH_SA=${PUSH_SA:-warden-push@$PROJECT_ID.iam.gserviceaccount.com}
REQUESTS_TOPIC=${REQUESTS_TOPIC:-ai-governance-requests}
BATCH_TOPIC=${BATCH_TOPIC:-ai-governance-batch}
# Eventarc creates its own push subscription on its transport topic; a separate topic keeps each
# message from being delivered twice (once per subscription).
EVENTS_TOPIC=${EVENTS_TOPIC:-ai-governance-events}
RESULTS_TOPIC=${RESULTS_TOPIC:-ai-governance-results}
DEAD_TOPIC=${DEAD_TOPIC:-ai-governance-dead-letter}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}

gc() { gcloud --project="$PROJECT_ID" --quiet "$@"; }
exists() { "$@" >/dev/null 2>&1; }
project_number=$(gc projects describe "$PROJECT_ID" --format='value(projectNumber)')
pubsub_agent="service-$project_number@gcp-sa-pubsub.iam.gserviceaccount.com"

echo "== APIs, repository, service accounts, secret"
gc services enable run.googleapis.com pubsub.googleapis.com eventarc.googleapis.com \
  artifactregistry.googleapis.com cloudbuild.googleapis.com secretmanager.googleapis.com
exists gc artifacts repositories describe "$REPO" --location="$REGION" \
  || gc artifacts repositories create "$REPO" --location="$REGION" --repository-format=docker
for sa in "$RUN_SA" "$PUSH_SA"; do
  exists gc iam service-accounts describe "$sa" || gc iam service-accounts create "${sa%%@*}"
done
if ! exists gc secrets describe warden-token-salt; then
  head -c 32 /dev/urandom | base64 | gc secrets create warden-token-salt --data-file=-
fi
gc secrets add-iam-policy-binding warden-token-salt --member="serviceAccount:$RUN_SA" \
  --role=roles/secretmanager.secretAccessor >/dev/null

echo "== image $IMAGE"
build_config="${TMPDIR:-/tmp}/warden-cloudbuild.yaml"
cat >"$build_config" <<YAML
steps:
  - name: gcr.io/cloud-builders/docker
    args: ["build", "-f", "gcp/Dockerfile", "-t", "$IMAGE", "."]
images: ["$IMAGE"]
timeout: 1800s
YAML
gc builds submit --config="$build_config" .

echo "== topics"
for t in "$REQUESTS_TOPIC" "$EVENTS_TOPIC" "$BATCH_TOPIC" "$RESULTS_TOPIC" "$DEAD_TOPIC"; do
  exists gc pubsub topics describe "$t" || gc pubsub topics create "$t"
done
gc pubsub topics add-iam-policy-binding "$RESULTS_TOPIC" --member="serviceAccount:$RUN_SA" \
  --role=roles/pubsub.publisher >/dev/null
# Pub/Sub itself moves messages to the dead-letter topic and acks them on the source.
gc pubsub topics add-iam-policy-binding "$DEAD_TOPIC" --member="serviceAccount:$pubsub_agent" \
  --role=roles/pubsub.publisher >/dev/null

echo "== Cloud Run service"
sed -e "s|PROJECT_ID|$PROJECT_ID|g" -e "s|REGION|$REGION|g" -e "s|IMAGE|$IMAGE|g" \
  -e "s|SERVICE_ACCOUNT|$RUN_SA|g" gcp/service.yaml >"${TMPDIR:-/tmp}/warden-service.yaml"
gc run services replace "${TMPDIR:-/tmp}/warden-service.yaml" --region="$REGION"
# The same deployment by flags, for reference (service.yaml is the source of truth):
#   gcloud run deploy warden --image="$IMAGE" --region="$REGION" --service-account="$RUN_SA" \
#     --memory=512Mi --min-instances=1 --max-instances=100 --concurrency=80 --timeout=60 \
#     --set-env-vars=WARDEN_RESULT_TOPIC=projects/$PROJECT_ID/topics/$RESULTS_TOPIC,WARDEN_REQUEST_POLICY=tighten
url=$(gc run services describe warden --region="$REGION" --format='value(status.url)')
# The HTTP API is public as in the guide (API keys: WARDEN_API_KEYS); push and Eventarc
# authenticate with OIDC tokens of the push service account.
gc run services add-iam-policy-binding warden --region="$REGION" --member=allUsers --role=roles/run.invoker >/dev/null
gc run services add-iam-policy-binding warden --region="$REGION" \
  --member="serviceAccount:$PUSH_SA" --role=roles/run.invoker >/dev/null
gc iam service-accounts add-iam-policy-binding "$PUSH_SA" --member="serviceAccount:$pubsub_agent" \
  --role=roles/iam.serviceAccountTokenCreator >/dev/null

# The service checks the push tokens itself (it is public for the HTTP API): the audiences the
# push subscription (the push URL) and Eventarc (the service URL) sign for, and their account.
gc run services update warden --region="$REGION" \
  --update-env-vars="^@^WARDEN_PUSH_AUDIENCE=$url/pubsub/push,$url@WARDEN_PUSH_SERVICE_ACCOUNT=$PUSH_SA" >/dev/null

echo "== push subscription (OIDC token, retry + dead letter)"
push_flags=(--topic="$REQUESTS_TOPIC" --push-endpoint="$url/pubsub/push"
  --push-auth-service-account="$PUSH_SA" --push-auth-token-audience="$url/pubsub/push"
  --ack-deadline=60 --min-retry-delay=10s --max-retry-delay=600s
  --dead-letter-topic="$DEAD_TOPIC" --max-delivery-attempts="$MAX_ATTEMPTS")
if exists gc pubsub subscriptions describe warden-push; then
  gc pubsub subscriptions update warden-push "${push_flags[@]:1}"
else
  gc pubsub subscriptions create warden-push "${push_flags[@]}"
fi
gc pubsub subscriptions add-iam-policy-binding warden-push --member="serviceAccount:$pubsub_agent" \
  --role=roles/pubsub.subscriber >/dev/null

echo "== batch subscription for the pull worker (retry + dead letter)"
batch_flags=(--topic="$BATCH_TOPIC" --ack-deadline=60 --min-retry-delay=10s --max-retry-delay=600s
  --dead-letter-topic="$DEAD_TOPIC" --max-delivery-attempts="$MAX_ATTEMPTS")
if exists gc pubsub subscriptions describe ai-governance-batch; then
  gc pubsub subscriptions update ai-governance-batch "${batch_flags[@]:1}"
else
  gc pubsub subscriptions create ai-governance-batch "${batch_flags[@]}"
fi
gc pubsub subscriptions add-iam-policy-binding ai-governance-batch --member="serviceAccount:$RUN_SA" \
  --role=roles/pubsub.subscriber >/dev/null
gc pubsub subscriptions add-iam-policy-binding ai-governance-batch --member="serviceAccount:$pubsub_agent" \
  --role=roles/pubsub.subscriber >/dev/null
dead_sub=ai-governance-dead-letter-read
exists gc pubsub subscriptions describe "$dead_sub" || gc pubsub subscriptions create "$dead_sub" --topic="$DEAD_TOPIC"

echo "== Eventarc trigger (CloudEvents to /pubsub/push)"
if ! exists gc eventarc triggers describe warden-pubsub --location="$REGION"; then
  gc eventarc triggers create warden-pubsub --location="$REGION" \
    --destination-run-service=warden --destination-run-region="$REGION" \
    --destination-run-path=/pubsub/push \
    --event-filters=type=google.cloud.pubsub.topic.v1.messagePublished \
    --transport-topic="$EVENTS_TOPIC" \
    --service-account="$PUSH_SA"
fi

echo "== pull worker (Cloud Run job)"
sed -e "s|PROJECT_ID|$PROJECT_ID|g" -e "s|REGION|$REGION|g" -e "s|IMAGE|$IMAGE|g" \
  -e "s|SERVICE_ACCOUNT|$RUN_SA|g" gcp/worker-job.yaml >"${TMPDIR:-/tmp}/warden-job.yaml"
gc run jobs replace "${TMPDIR:-/tmp}/warden-job.yaml" --region="$REGION"

echo
echo "service:  $url"
echo "push:     $url/pubsub/push (topic $REQUESTS_TOPIC via subscription warden-push, topic $EVENTS_TOPIC via Eventarc)"
echo "results:  projects/$PROJECT_ID/topics/$RESULTS_TOPIC"
echo "batch:    gcloud run jobs execute warden-pull --region=$REGION"
