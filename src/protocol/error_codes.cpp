#include "protocol/error_codes.hpp"

namespace pa::protocol {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidMessage:
      return "INVALID_MESSAGE";
    case ErrorCode::kInvalidPath:
      return "INVALID_PATH";
    case ErrorCode::kProjectNesting:
      return "PROJECT_NESTING";
    case ErrorCode::kProjectNotFound:
      return "PROJECT_NOT_FOUND";
    case ErrorCode::kProjectLimit:
      return "PROJECT_LIMIT";
    case ErrorCode::kExecutionTimeout:
      return "EXECUTION_TIMEOUT";
    case ErrorCode::kClaudeNotFound:
      return "CLAUDE_NOT_FOUND";
    case ErrorCode::kProcessActive:
      return "PROCESS_ACTIVE";
    case ErrorCode::kResourceLimit:
      return "RESOURCE_LIMIT";
    case ErrorCode::kInternalError:
      return "INTERNAL_ERROR";
    case ErrorCode::kExecutionFailed:
      return "EXECUTION_FAILED";
    case ErrorCode::kForbidden:
      return "FORBIDDEN";
    case ErrorCode::kPermissionNotFound:
      return "PERMISSION_NOT_FOUND";
    case ErrorCode::kShuttingDown:
      return "SHUTTING_DOWN";
    case ErrorCode::kStorageFailed:
      return "STORAGE_FAILED";
    case ErrorCode::kUnsupportedProtocol:
      return "UNSUPPORTED_PROTOCOL";
    case ErrorCode::kGitFailed:
      return "GIT_FAILED";
    case ErrorCode::kDeviceNotFound:
      return "DEVICE_NOT_FOUND";
    case ErrorCode::kAttachmentNotFound:
      return "ATTACHMENT_NOT_FOUND";
    case ErrorCode::kBudgetExceeded:
      return "BUDGET_EXCEEDED";
    case ErrorCode::kSearchFailed:
      return "SEARCH_FAILED";
    case ErrorCode::kNodeUnavailable:
      return "NODE_UNAVAILABLE";
  }
  return "INTERNAL_ERROR";
}

}  // namespace pa::protocol
