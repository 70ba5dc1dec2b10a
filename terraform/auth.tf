################################################################################
# Authentication: the $connect authorizer (auth_mode = "jwt", the default)
#
# Every connection presents a JWT (the `token` query parameter, or an
# `Authorization: Bearer` header); its `rooms` claim names the rooms it may join
# (docs/security.md). With auth_mode = "none" the rooms are public.
################################################################################

locals {
  auth_enabled = var.auth_mode == "jwt"
  jwt_issuer   = coalesce(var.jwt_issuer, local.name_prefix)
  # HS256 with a secret in Secrets Manager unless the tokens come from an OIDC
  # issuer's JWKS; without jwt_secret_arn the stack creates the secret, empty.
  jwt_uses_secret    = local.auth_enabled && var.jwks_url == null
  jwt_creates_secret = local.jwt_uses_secret && var.jwt_secret_arn == null
  jwt_secret_arn     = local.jwt_creates_secret ? aws_secretsmanager_secret.jwt[0].arn : var.jwt_secret_arn

  # API Gateway refuses (401) a handshake missing an identity source without invoking the
  # authorizer; it requires every source listed, so "either" lists none.
  connect_identity_source = {
    query  = "route.request.querystring.token"
    header = "route.request.header.Authorization"
  }

  authorizer_function = {
    authorizer = {
      description = "WebSocket $connect authorizer: verifies the JWT and its room claims."
      memory_size = var.api_function_memory_mb
      timeout     = var.api_function_timeout_seconds
      environment = merge(
        {
          JWT_ISSUER   = local.jwt_issuer
          JWT_AUDIENCE = var.jwt_audience
        },
        local.jwt_uses_secret ? { JWT_SECRET_ARN = local.jwt_secret_arn } : { JWKS_URL = var.jwks_url },
      )
    }
  }
}

# The HS256 signing secret, created without a value: put one (32 bytes or more)
# with `aws secretsmanager put-secret-value` before the first connection
# (docs/deploy.md). Terraform never holds it.
resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:An HS256 signing secret is rotated by the operator together with the token issuer that shares it; automatic rotation would invalidate every issued token.
  count = local.jwt_creates_secret ? 1 : 0

  name        = "${local.name_prefix}-jwt-signing-secret"
  description = "HS256 secret the $connect authorizer of ${local.name_prefix} verifies tokens with"
  kms_key_id  = var.kms_key_arn
}

data "aws_iam_policy_document" "authorizer_secret" {
  count = local.jwt_uses_secret ? 1 : 0

  source_policy_documents = [data.aws_iam_policy_document.function_base["authorizer"].json]

  statement {
    sid       = "ReadSigningSecret"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.jwt_secret_arn]
  }
}

resource "aws_apigatewayv2_authorizer" "connect" {
  count = local.auth_enabled ? 1 : 0

  api_id          = aws_apigatewayv2_api.this.id
  name            = "${local.name_prefix}-connect"
  authorizer_type = "REQUEST"
  authorizer_uri  = aws_lambda_function.this["authorizer"].invoke_arn
  # Where the token must be (var.connect_token_source). WebSocket APIs do not cache Lambda
  # authorizer results (the TTL is for HTTP APIs): the authorizer runs on every $connect that
  # has it and caches the issuer's keys itself.
  identity_sources = var.connect_token_source == "either" ? null : [local.connect_identity_source[var.connect_token_source]]
}

resource "aws_lambda_permission" "authorizer" {
  count = local.auth_enabled ? 1 : 0

  statement_id  = "AllowApiGateway-authorizer"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["authorizer"].function_name
  principal     = "apigateway.amazonaws.com"
  # Only this API's authorizer may invoke it.
  source_arn = "${aws_apigatewayv2_api.this.execution_arn}/authorizers/${aws_apigatewayv2_authorizer.connect[0].id}"
}

################################################################################
# A customer-managed key (var.kms_key_arn): what each role needs of it
################################################################################

# Tables encrypted with the key are read and written through DynamoDB, which
# uses the key on the caller's behalf: only through that service.
data "aws_iam_policy_document" "kms_dynamodb" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid    = "UseKeyThroughDynamoDB"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.${local.dns_suffix}"]
    }
  }
}

data "aws_iam_policy_document" "kms_secret" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid       = "DecryptSecretThroughSecretsManager"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.${local.dns_suffix}"]
    }
  }
}

# The queues encrypted with the key (queue.tf): SQS asks KMS for a data key on a
# send (kms:GenerateDataKey) and decrypts it on a receive or a send that reuses one
# (kms:Decrypt), as the caller, through SQS only.
data "aws_iam_policy_document" "kms_sqs" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid       = "UseKeyThroughSqs"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sqs.${local.region}.${local.dns_suffix}"]
    }
  }
}

# Every function that sends to or receives from the queues: those that send jobs (the
# worker also receives them and parks some in the DLQ). Producers in
# var.producer_role_arns and operators reading the DLQ need the same on their own
# roles (docs/deploy.md).
resource "aws_iam_role_policy" "kms_sqs" {
  for_each = var.kms_key_arn == null ? toset([]) : toset(local.fanout_sending_functions)

  name   = "${local.name_prefix}-${each.key}-kms-sqs"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.kms_sqs[0].json
}

locals {
  # Function => the service it uses the key through: the functions that use the
  # tables, and the authorizer when it reads a secret the stack encrypted.
  kms_uses = var.kms_key_arn == null ? {} : merge(
    { for function in ["connect", "disconnect", "sendmessage", "worker", "recover", "publish", "rooms"] : function => "dynamodb" },
    local.jwt_uses_secret ? { authorizer = "secretsmanager" } : {},
  )
}

resource "aws_iam_role_policy" "kms" {
  for_each = local.kms_uses

  name   = "${local.name_prefix}-${each.key}-kms"
  role   = aws_iam_role.function[each.key].id
  policy = each.value == "dynamodb" ? data.aws_iam_policy_document.kms_dynamodb[0].json : data.aws_iam_policy_document.kms_secret[0].json
}
