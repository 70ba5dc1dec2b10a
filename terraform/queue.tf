################################################################################
# SQS: fan-out jobs and their dead-letter queue
################################################################################

resource "aws_sqs_queue" "fanout_dlq" {
  name                      = "${local.name_prefix}-fanout-dlq"
  message_retention_seconds = 1209600 # 14 days, the SQS maximum: time to investigate and redrive
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "fanout" {
  name = "${local.name_prefix}-fanout"

  # AWS guidance for Lambda event sources: at least six times the function timeout,
  # so a job is not redelivered while a (retried) invocation still holds it.
  visibility_timeout_seconds = 6 * var.worker_timeout_seconds

  message_retention_seconds = var.fanout_message_retention_seconds
  max_message_size          = 262144
  sqs_managed_sse_enabled   = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.fanout_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
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
# the `sender` every frame shows), so only sendmessage, the worker (its hand-offs) and the
# producer roles named in var.producer_role_arns may, whatever their IAM policies allow. An
# explicit Deny, because an Allow in a queue policy cannot take away what IAM grants in the
# same account. Operators who run `wsfanout publish` or redrive the DLQ need a listed role.
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

locals {
  fanout_producer_arns = concat(
    [for function in ["sendmessage", "worker"] : aws_iam_role.function[function].arn],
    var.producer_role_arns,
  )
}
