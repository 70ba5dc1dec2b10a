################################################################################
# API Gateway's account-level CloudWatch role, once per account and region
#
# A WebSocket stage logs only once the region's API Gateway account settings name an IAM role
# for CloudWatch Logs. The setting is region-wide, so no workspace of the stack owns it (a
# `terraform destroy` of dev would stop prod's logs): apply this module once per account and
# region, in its own state, and leave it.
################################################################################

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project   = "wsfanout"
      ManagedBy = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
}

################################################################################
# API Gateway's account-level CloudWatch role (needed for stage logging)
################################################################################

data "aws_iam_policy_document" "apigateway_assume_role" {
  statement {
    sid     = "ApiGatewayAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }

    # No aws:SourceAccount condition: API Gateway is not documented to set it when it assumes
    # this role, and a trust that never matches stops execution logging for every API of the
    # account and region. The role is bound to this account by iam:PassRole at UpdateAccount
    # (a role cannot be passed to another account), and it may only write logs.
  }
}

# The role serves every API Gateway API of this account and region, so it is
# scoped to the region's log groups rather than to this stack's.
data "aws_iam_policy_document" "apigateway_cloudwatch" {
  statement {
    sid    = "ApiGatewayLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogGroups",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
      "logs:GetLogEvents",
      "logs:FilterLogEvents",
    ]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
  }
}

resource "aws_iam_role" "apigateway_cloudwatch" {
  name                 = var.name
  description          = "Lets API Gateway write execution and access logs in ${local.region}"
  assume_role_policy   = data.aws_iam_policy_document.apigateway_assume_role.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "apigateway_cloudwatch" {
  name   = var.name
  role   = aws_iam_role.apigateway_cloudwatch.id
  policy = data.aws_iam_policy_document.apigateway_cloudwatch.json
}

resource "aws_api_gateway_account" "this" {
  cloudwatch_role_arn = aws_iam_role.apigateway_cloudwatch.arn

  depends_on = [aws_iam_role_policy.apigateway_cloudwatch]
}
