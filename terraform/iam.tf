################################################################################
# IAM: one role per function, each allowed only what its code calls
################################################################################

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name                 = "${local.name_prefix}-${each.key}"
  description          = "Execution role of ${local.name_prefix}-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume_role.json
  max_session_duration = 3600
}

# Shared by every function: write to its own log group, send X-Ray traces.
data "aws_iam_policy_document" "function_base" {
  for_each = local.functions

  statement {
    sid    = "OwnLogGroup"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  # X-Ray trace ingestion has no resource-level permissions: "*" is the only valid resource.
  statement {
    sid    = "XRayTraces"
    effect = "Allow"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
    ]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "connect" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["connect"].json]

  statement {
    sid       = "RecordConnection"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.connections.arn, aws_dynamodb_table.memberships.arn]
  }
}

data "aws_iam_policy_document" "disconnect" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["disconnect"].json]

  statement {
    sid       = "ForgetConnection"
    effect    = "Allow"
    actions   = ["dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.connections.arn, aws_dynamodb_table.memberships.arn]
  }
}

data "aws_iam_policy_document" "rooms" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["rooms"].json]

  statement {
    sid       = "LookUpConnection"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.connections.arn]
  }

  # The connection's set of rooms, and nothing else of it (its principal, grants and expiry
  # are $connect's, its allowance sendmessage's): see SpendSenderAllowance.
  statement {
    sid       = "ChangeConnectionRooms"
    effect    = "Allow"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.connections.arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:Attributes"
      values   = [aws_dynamodb_table.connections.hash_key, "rooms"]
    }

    condition {
      test     = "StringEqualsIfExists"
      variable = "dynamodb:ReturnValues"
      values   = ["NONE"]
    }
  }

  statement {
    sid    = "JoinAndLeave"
    effect = "Allow"
    actions = [
      "dynamodb:PutItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.memberships.arn]
  }
}

data "aws_iam_policy_document" "sendmessage" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["sendmessage"].json]

  statement {
    sid       = "LookUpSender"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.connections.arn]
  }

  # The per-connection rate limit: a conditional update of the sender's allowance, and of nothing
  # else of the connection (its room, principal and expiry are $connect's). dynamodb:Attributes
  # lists every top-level attribute a request names, its key included; returning values would
  # read attributes the list does not name.
  statement {
    sid       = "SpendSenderAllowance"
    effect    = "Allow"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.connections.arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:Attributes"
      values   = [aws_dynamodb_table.connections.hash_key, "allowance"]
    }

    condition {
      test     = "StringEqualsIfExists"
      variable = "dynamodb:ReturnValues"
      values   = ["NONE"]
    }
  }

  statement {
    sid       = "EnqueueFanout"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]
  }

  # The room's next offset (an atomic ADD, or a restart under a new epoch), the message kept
  # under it, and taken back out if the enqueue then fails.
  statement {
    sid    = "NumberAndKeepMessages"
    effect = "Allow"
    actions = [
      "dynamodb:UpdateItem",
      "dynamodb:PutItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.history.arn]
  }
}

data "aws_iam_policy_document" "recover" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["recover"].json]

  statement {
    sid       = "LookUpClient"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.connections.arn]
  }

  statement {
    sid    = "ReadHistory"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.history.arn]
  }

  statement {
    sid       = "PostToConnections"
    effect    = "Allow"
    actions   = ["execute-api:ManageConnections"]
    resources = ["${aws_apigatewayv2_api.this.execution_arn}/${local.stage_name}/POST/@connections/*"]
  }
}

data "aws_iam_policy_document" "publish" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["publish"].json]

  # As sendmessage: the room's next offset (an atomic ADD, or a restart under a new epoch), the
  # message kept under it, and taken back out if the enqueue then fails.
  statement {
    sid    = "NumberAndKeepMessages"
    effect = "Allow"
    actions = [
      "dynamodb:UpdateItem",
      "dynamodb:PutItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.history.arn]
  }

  # Idempotency keys, kept in the history table as the items of rooms "#publish/<key>" (no
  # room's name starts with #): claimed, read back when the claim loses, recorded, released.
  statement {
    sid    = "IdempotencyKeys"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.history.arn]

    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["#publish/*"]
    }
  }

  statement {
    sid       = "EnqueueFanout"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]
  }
}

data "aws_iam_policy_document" "default" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["default"].json]
}

data "aws_iam_policy_document" "worker" {
  source_policy_documents = [data.aws_iam_policy_document.function_base["worker"].json]

  statement {
    sid       = "PageRoom"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = [aws_dynamodb_table.memberships.arn]
  }

  statement {
    sid       = "DeleteStaleMemberships"
    effect    = "Allow"
    actions   = ["dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.memberships.arn]
  }

  statement {
    sid    = "PageAllAndDeleteStale"
    effect = "Allow"
    actions = [
      "dynamodb:Scan",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.connections.arn]
  }

  statement {
    sid    = "ConsumeFanout"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:ChangeMessageVisibility",
    ]
    resources = [aws_sqs_queue.fanout.arn]
  }

  statement {
    sid       = "EnqueueContinuations"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]
  }

  statement {
    sid       = "DeadLetterWhatIsGivenUp"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout_dlq.arn]
  }

  statement {
    sid       = "CheckpointJobs"
    effect    = "Allow"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.progress.arn]
  }

  statement {
    sid       = "PostToConnections"
    effect    = "Allow"
    actions   = ["execute-api:ManageConnections"]
    resources = ["${aws_apigatewayv2_api.this.execution_arn}/${local.stage_name}/POST/@connections/*"]
  }
}

locals {
  function_policies = merge(
    {
      connect     = data.aws_iam_policy_document.connect.json
      disconnect  = data.aws_iam_policy_document.disconnect.json
      sendmessage = data.aws_iam_policy_document.sendmessage.json
      default     = data.aws_iam_policy_document.default.json
      worker      = data.aws_iam_policy_document.worker.json
      recover     = data.aws_iam_policy_document.recover.json
      publish     = data.aws_iam_policy_document.publish.json
      rooms       = data.aws_iam_policy_document.rooms.json
    },
    # The authorizer reads only its signing secret (with JWKS it needs nothing but logs).
    local.auth_enabled ? {
      authorizer = local.jwt_uses_secret ? data.aws_iam_policy_document.authorizer_secret[0].json : data.aws_iam_policy_document.function_base["authorizer"].json
    } : {},
  )
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${local.name_prefix}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

################################################################################
# Publishers: who may call POST /publish (api.tf)
################################################################################

# Not attached here: operators attach it to the roles of the backends that publish
# (`terraform output publish_policy_arn`). It allows that one route of this stack, nothing else;
# whoever has it may post to any room, or to all (its messages carry no sender).
data "aws_iam_policy_document" "publishers" {
  statement {
    sid       = "InvokePublish"
    effect    = "Allow"
    actions   = ["execute-api:Invoke"]
    resources = [local.publish_route_arn]
  }
}

resource "aws_iam_policy" "publishers" {
  name        = "${local.name_prefix}-publishers"
  description = "Call POST /publish of ${local.name_prefix} (SigV4, service execute-api): publish to any room of the stack."
  policy      = data.aws_iam_policy_document.publishers.json
}
