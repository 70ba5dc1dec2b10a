################################################################################
# Lambda functions: one per binary of functions/Cargo.toml, built by
# `cargo lambda build --release --arm64 --output-format zip` into
# target/lambda/<name>/bootstrap.zip
################################################################################

locals {
  # Read by every binary; each function's own variables are those its binary reads
  # (fanout::config::Function::env_vars, checked by tests/terraform_invariants).
  common_environment = {
    RUST_LOG = var.log_level
  }

  # The parts of a split room run side by side and would deliver out of order: per_room never
  # splits (variables.tf refuses an explicit room_split_ways above 1 with it).
  room_split_ways = coalesce(var.room_split_ways, local.ordered ? 1 : 2)

  functions = merge(local.api_functions, local.auth_enabled ? local.authorizer_function : {})

  api_functions = {
    connect = {
      description = "WebSocket $connect: records the connection, its grants and the room it asks for."
      memory_size = var.api_function_memory_mb
      timeout     = var.api_function_timeout_seconds
      environment = {
        CONNECTIONS_TABLE      = aws_dynamodb_table.connections.name
        MEMBERSHIPS_TABLE      = aws_dynamodb_table.memberships.name
        CONNECTION_TTL_SECONDS = tostring(var.connection_ttl_seconds)
      }
    }

    disconnect = {
      description = "WebSocket $disconnect: deletes the connection record and its memberships."
      memory_size = var.api_function_memory_mb
      timeout     = var.api_function_timeout_seconds
      environment = {
        CONNECTIONS_TABLE = aws_dynamodb_table.connections.name
        MEMBERSHIPS_TABLE = aws_dynamodb_table.memberships.name
      }
    }

    rooms = {
      description = "WebSocket join and leave: puts the connection in a room its token grants, or takes it out."
      memory_size = var.api_function_memory_mb
      timeout     = var.api_function_timeout_seconds
      environment = {
        CONNECTIONS_TABLE        = aws_dynamodb_table.connections.name
        MEMBERSHIPS_TABLE        = aws_dynamodb_table.memberships.name
        MAX_ROOMS_PER_CONNECTION = tostring(var.max_rooms_per_connection)
      }
    }

    sendmessage = {
      description = "WebSocket sendmessage: validates, numbers and keeps the message in its room's history, enqueues a fan-out job, acks the sender."
      memory_size = var.api_function_memory_mb
      timeout     = var.api_function_timeout_seconds
      environment = {
        CONNECTIONS_TABLE     = aws_dynamodb_table.connections.name
        MEMBERSHIPS_TABLE     = aws_dynamodb_table.memberships.name
        HISTORY_TABLE         = aws_dynamodb_table.history.name
        HISTORY_SIZE          = tostring(var.history_size)
        HISTORY_TTL_SECONDS   = tostring(var.history_ttl_seconds)
        FANOUT_QUEUE_URL      = aws_sqs_queue.fanout.url
        MAX_DATA_BYTES        = tostring(var.max_data_bytes)
        RATE_LIMIT_PER_SECOND = tostring(var.rate_limit_per_second)
        RATE_LIMIT_BURST      = tostring(var.rate_limit_burst)
        METRICS_NAMESPACE     = var.metrics_namespace
        WORKSPACE             = terraform.workspace
      }
    }

    recover = {
      description = "WebSocket recover: posts a reconnecting client what its room's history holds after its last offset, then a recovered frame."
      memory_size = var.api_function_memory_mb
      # Up to history_size posts, one after the other: as long as API Gateway waits.
      timeout = local.integration_timeout_seconds
      environment = {
        CONNECTIONS_TABLE   = aws_dynamodb_table.connections.name
        MEMBERSHIPS_TABLE   = aws_dynamodb_table.memberships.name
        HISTORY_TABLE       = aws_dynamodb_table.history.name
        HISTORY_SIZE        = tostring(var.history_size)
        HISTORY_TTL_SECONDS = tostring(var.history_ttl_seconds)
        MANAGEMENT_ENDPOINT = local.management_endpoint
        METRICS_NAMESPACE   = var.metrics_namespace
        WORKSPACE           = terraform.workspace
      }
    }

    publish = {
      description = "HTTP POST /publish (IAM-authorized, for backends): validates, numbers and keeps the message in its room's history, enqueues a fan-out job, answers its id and offset; an idempotency key publishes once."
      memory_size = var.api_function_memory_mb
      # A publish makes several history-table and queue calls in a row (the idempotency key's
      # claim and record, the offset and the message, the enqueue), each bounded to 5 s: as long
      # as API Gateway waits, and under the publish API's 30 s integration timeout, so the caller
      # gets the function's answer (and a key's 35 s lease outlives every run that holds it).
      timeout = local.integration_timeout_seconds
      environment = {
        HISTORY_TABLE       = aws_dynamodb_table.history.name
        HISTORY_SIZE        = tostring(var.history_size)
        HISTORY_TTL_SECONDS = tostring(var.history_ttl_seconds)
        FANOUT_QUEUE_URL    = aws_sqs_queue.fanout.url
        MAX_DATA_BYTES      = tostring(var.max_data_bytes)
        METRICS_NAMESPACE   = var.metrics_namespace
        WORKSPACE           = terraform.workspace
      }
    }

    default = {
      description = "WebSocket $default: pong for a ping, error frame for unknown actions and non-JSON messages."
      memory_size = var.api_function_memory_mb
      timeout     = var.api_function_timeout_seconds
      environment = {}
    }

    worker = {
      description = "Fan-out worker: pages through a room and posts to each connection."
      memory_size = var.worker_memory_mb
      timeout     = var.worker_timeout_seconds
      environment = {
        CONNECTIONS_TABLE     = aws_dynamodb_table.connections.name
        MEMBERSHIPS_TABLE     = aws_dynamodb_table.memberships.name
        PROGRESS_TABLE        = aws_dynamodb_table.progress.name
        PROGRESS_TTL_SECONDS  = tostring(var.fanout_message_retention_seconds + 86400)
        FANOUT_QUEUE_URL      = aws_sqs_queue.fanout.url
        DEAD_LETTER_QUEUE_URL = aws_sqs_queue.fanout_dlq.url
        MANAGEMENT_ENDPOINT   = local.management_endpoint
        FANOUT_CONCURRENCY    = tostring(var.fanout_concurrency)
        POST_TIMEOUT_MS       = tostring(var.post_timeout_ms)
        DEADLINE_MARGIN_MS    = tostring(var.deadline_margin_ms)
        RETRY_BUDGET_SECONDS  = tostring(var.retry_budget_seconds)
        ROOM_SPLIT_WAYS       = tostring(local.room_split_ways)
        ACCOUNT_POST_RATE     = tostring(var.account_post_rate)
        DELIVERY_MODE         = var.delivery_mode
        METRICS_NAMESPACE     = var.metrics_namespace
        WORKSPACE             = terraform.workspace
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key by default; set var.kms_key_arn to use a customer-managed key.
  for_each = local.functions

  name              = "/aws/lambda/${local.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously only (API Gateway, SQS event source mapping): a Lambda DLQ applies to async invocations; failed fan-out jobs land in the SQS dead-letter queue.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded upstream: stage and route throttling for the API functions (the publish API's stage throttling for publish), scaling_config.maximum_concurrency for the worker; reserving account concurrency per function would only take it from the pool (docs/deploy.md, "Production": when to reserve it by hand).
  #checkov:skip=CKV_AWS_117:Talks only to public AWS endpoints (DynamoDB, SQS, API Gateway management API); a VPC would add NAT gateways or endpoints and cold-start cost for no isolation gain.
  #checkov:skip=CKV_AWS_272:Zips are built from source by cargo lambda in CI and deployed by Terraform directly; code signing needs an AWS Signer profile and a signed S3 artifact flow this stack does not have.
  #checkov:skip=CKV_AWS_173:Environment holds no secrets (names, URLs, tuning); it is encrypted with the AWS-managed Lambda key by default, and var.kms_key_arn switches to a customer-managed key.
  for_each = local.functions

  function_name = "${local.name_prefix}-${each.key}"
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  filename         = "${path.module}/../target/lambda/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${path.module}/../target/lambda/${each.key}/bootstrap.zip")
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]

  memory_size = each.value.memory_size
  timeout     = each.value.timeout
  kms_key_arn = var.kms_key_arn

  environment {
    variables = merge(local.common_environment, each.value.environment)
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  # The role must be able to write logs and traces before the first invocation.
  depends_on = [aws_iam_role_policy.function]

  lifecycle {
    precondition {
      condition     = var.deadline_margin_ms < var.worker_timeout_seconds * 1000 && var.post_timeout_ms < var.deadline_margin_ms
      error_message = "Need post_timeout_ms < deadline_margin_ms < worker_timeout_seconds * 1000, so in-flight posts finish before the worker's deadline."
    }
  }
}

# The worker consumes the fan-out queue; a failed job is retried alone
# (ReportBatchItemFailures) and after max_receive_count (ordered_max_receive_count with
# per_room) lands in the DLQ.
resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn = aws_sqs_queue.fanout.arn
  function_name    = aws_lambda_function.this["worker"].arn

  batch_size = var.worker_batch_size
  # Lambda refuses a batching window on a FIFO queue: omitted there (variables.tf keeps
  # worker_batching_window_seconds at 0 and worker_batch_size at 10 or less with per_room).
  maximum_batching_window_in_seconds = local.ordered ? null : var.worker_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.worker_maximum_concurrency
  }

  depends_on = [aws_iam_role_policy.function]

  lifecycle {
    precondition {
      condition     = var.worker_batch_size <= 10 || var.worker_batching_window_seconds >= 1
      error_message = "A worker_batch_size above 10 needs worker_batching_window_seconds >= 1 (SQS event source rule)."
    }
    precondition {
      condition     = local.room_split_ways <= var.worker_maximum_concurrency
      error_message = "room_split_ways must not exceed worker_maximum_concurrency: the parts of a split room are meant to run on as many workers at once."
    }
  }
}
