################################################################################
# SQS: fan-out jobs and their dead-letter queue
################################################################################

locals {
  # SQS requires a FIFO queue's name to end in .fifo, and SqsQueue (functions/src/adapters/sqs.rs)
  # tells a FIFO queue by its URL ending so: the URLs the functions get need nothing else.
  queue_suffix = local.ordered ? ".fifo" : ""

  # With per_room a job keeps its FIFO message until it is done, so it is received once per
  # invocation that holds it: up to ceil(retry_budget_seconds / worker_timeout_seconds) + 10 times
  # when a member keeps failing for the whole retry budget. SQS hands the worker up to
  # worker_batch_size messages of one room at once, and those behind a held one go back unrun,
  # each such receive counting for them too: a message waiting behind held ones is received up to
  # worker_batch_size times as often before its own turn ends. var.ordered_max_receive_count's
  # validations refuse a value below this need, and a need above SQS's maximum of 1000.
  ordered_receives_needed = var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10)
  # null: the need (250 with the defaults).
  ordered_max_receive_count = var.ordered_max_receive_count != null ? var.ordered_max_receive_count : min(1000, local.ordered_receives_needed)

  max_receive_count = local.ordered ? local.ordered_max_receive_count : var.max_receive_count

  # AWS guidance for Lambda event sources: at least six times the function timeout,
  # so a job is not redelivered while a (retried) invocation still holds it.
  fanout_visibility_timeout_seconds = 6 * var.worker_timeout_seconds

  # SQS's longest DelaySeconds, and the longest retry delay the worker gives a job or a failed
  # record (fanout::ports::MAX_QUEUE_DELAY).
  max_queue_delay_seconds = 900

  # SQS deletes a message older than its retention without moving it to the DLQ, so a job must
  # reach the DLQ within it. Its clock starts at the send: a standard queue's retry job is sent
  # with a delay of up to max_queue_delay_seconds (a FIFO queue takes none). Then each of its
  # max_receive_count receives lasts at most the batching window, the invocation and a retry
  # delay (a failed record, or a held per_room job), or the visibility timeout when the
  # invocation dies; the receive after the last moves it.
  # Both queues: the customer-managed key when there is one (each principal that sends or
  # receives then needs kms:GenerateDataKey and kms:Decrypt on it: auth.tf), else SQS-managed
  # SSE. The provider refuses SQS-managed SSE set beside a key, so null rather than false. SQS
  # asks KMS for a data key once per reuse period and principal: an hour keeps a busy queue's
  # KMS calls (and their account-wide quota) low; AWS allows 60 s to 24 h, 300 s by default.
  queue_encryption = var.kms_key_arn == null ? {
    sqs_managed_sse_enabled           = true
    kms_master_key_id                 = null
    kms_data_key_reuse_period_seconds = null
    } : {
    sqs_managed_sse_enabled           = null
    kms_master_key_id                 = var.kms_key_arn
    kms_data_key_reuse_period_seconds = 3600
  }

  fanout_retention_needed = (local.ordered ? 0 : local.max_queue_delay_seconds) + local.max_receive_count * max(
    local.fanout_visibility_timeout_seconds,
    var.worker_batching_window_seconds + var.worker_timeout_seconds + local.max_queue_delay_seconds,
  )
}

# Changing var.ordering replaces both queues (fifo_queue and name force a new queue) and deletes
# what they hold: docs/deploy.md says how to drain them first.
resource "aws_sqs_queue" "fanout_dlq" {
  name = "${local.name_prefix}-fanout-dlq${local.queue_suffix}"
  # A FIFO queue's dead-letter queue must be FIFO too. The worker's own dead letters each get a
  # group and deduplication id of their own, so they do not queue behind one another.
  fifo_queue = local.ordered

  message_retention_seconds = 1209600 # 14 days, the SQS maximum: time to investigate and redrive

  sqs_managed_sse_enabled           = local.queue_encryption.sqs_managed_sse_enabled
  kms_master_key_id                 = local.queue_encryption.kms_master_key_id
  kms_data_key_reuse_period_seconds = local.queue_encryption.kms_data_key_reuse_period_seconds
}

resource "aws_sqs_queue" "fanout" {
  name       = "${local.name_prefix}-fanout${local.queue_suffix}"
  fifo_queue = local.ordered

  # FIFO only (null leaves a standard queue as it was). SqsQueue sends every job with an explicit
  # MessageDeduplicationId, so two equal bodies are two messages, not one deduplicated by content.
  # High-throughput FIFO: deduplication and the send/receive quotas apply per message group (per
  # room) instead of 300 calls a second (3,000 messages batched) for the whole queue.
  content_based_deduplication = local.ordered ? false : null
  deduplication_scope         = local.ordered ? "messageGroup" : null
  fifo_throughput_limit       = local.ordered ? "perMessageGroupId" : null

  visibility_timeout_seconds = local.fanout_visibility_timeout_seconds

  message_retention_seconds = var.fanout_message_retention_seconds
  max_message_size          = 262144

  sqs_managed_sse_enabled           = local.queue_encryption.sqs_managed_sse_enabled
  kms_master_key_id                 = local.queue_encryption.kms_master_key_id
  kms_data_key_reuse_period_seconds = local.queue_encryption.kms_data_key_reuse_period_seconds

  # A FIFO job is received once per invocation that holds it or a message of its room before it
  # (local.ordered_max_receive_count says how many that can be); a standard queue's job once per
  # failure.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.fanout_dlq.arn
    maxReceiveCount     = local.max_receive_count
  })

  lifecycle {
    precondition {
      condition     = var.fanout_message_retention_seconds >= local.fanout_retention_needed
      error_message = "fanout_message_retention_seconds = ${var.fanout_message_retention_seconds} is shorter than a job can take to reach the dead-letter queue, and SQS would delete it unseen: it needs (${local.ordered ? 0 : local.max_queue_delay_seconds} s of a retry's delay) + ${local.max_receive_count} receives x max(visibility timeout ${local.fanout_visibility_timeout_seconds} s, batching window + worker timeout + ${local.max_queue_delay_seconds} s of retry delay) = ${local.fanout_retention_needed} s, before any time it waits in a backlog. Raise it, with room for a backlog (SQS keeps at most 1209600), or lower max_receive_count (ordered_max_receive_count with per_room) or worker_timeout_seconds."
    }
  }
}

# Only the fan-out queue may dead-letter into the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "fanout_dlq" {
  queue_url = aws_sqs_queue.fanout_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.fanout.arn]
  })
}

# A closed job boundary: whoever may send to the fan-out queue decides who receives what (and
# the `sender` every frame shows), so only sendmessage, publish (backends' POST /publish), the
# worker (its hand-offs) and the producer roles named in var.producer_role_arns may, whatever
# their IAM policies allow. An explicit Deny, because an Allow in a queue policy cannot take
# away what IAM grants in the same account. Operators who redrive the DLQ need a listed role;
# `wsfanout publish` goes through POST /publish (the publishers policy) instead.
data "aws_iam_policy_document" "fanout_queue" {
  statement {
    sid       = "OnlyKnownProducersSend"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = local.fanout_producer_arns
    }
  }
}

resource "aws_sqs_queue_policy" "fanout" {
  queue_url = aws_sqs_queue.fanout.id
  policy    = data.aws_iam_policy_document.fanout_queue.json
}

# The same boundary on the DLQ: what is parked there is redriven into the fan-out queue, so a job
# sent to the DLQ would reach the rooms without passing the fan-out queue's policy. Only the
# worker parks jobs there itself. SQS's own dead-lettering (after maxReceiveCount) is not a send
# by a principal: the Deny applies only to requests that carry a principal ARN, so it cannot
# catch SQS, and an anonymous request is allowed by nothing anyway. Operators' redrives only
# receive and delete here (StartMessageMoveTask, `wsfanout dlq redrive --max`): they send to the
# fan-out queue, as a role of var.producer_role_arns.
data "aws_iam_policy_document" "fanout_dlq" {
  statement {
    sid       = "OnlyTheWorkerParks"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout_dlq.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.function["worker"].arn]
    }

    condition {
      test     = "Null"
      variable = "aws:PrincipalArn"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "fanout_dlq" {
  queue_url = aws_sqs_queue.fanout_dlq.id
  policy    = data.aws_iam_policy_document.fanout_dlq.json
}

locals {
  # The functions that send jobs to the fan-out queue (the worker also parks them in the DLQ):
  # the queue policy lets them send, and a customer-managed key is granted to them (auth.tf).
  fanout_sending_functions = ["sendmessage", "publish", "worker"]

  fanout_producer_arns = concat(
    [for function in local.fanout_sending_functions : aws_iam_role.function[function].arn],
    var.producer_role_arns,
  )
}
