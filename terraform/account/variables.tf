variable "aws_region" {
  description = "The region whose API Gateway account settings get the logging role."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be a region name such as eu-west-1."
  }
}

variable "name" {
  description = "Name of the IAM role API Gateway assumes to write logs in this account and region."
  type        = string
  default     = "apigateway-cloudwatch-logs"

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.name))
    error_message = "name must be a valid IAM role name (1 to 64 of A-Z a-z 0-9 +=,.@_-)."
  }
}
