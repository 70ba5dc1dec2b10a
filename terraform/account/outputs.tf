output "cloudwatch_role_arn" {
  description = "The role the region's API Gateway account settings now name for CloudWatch Logs."
  value       = aws_api_gateway_account.this.cloudwatch_role_arn
}
