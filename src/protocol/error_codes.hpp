// Error codes a client can see. The spec's codes first; the rest are ours (docs/protocol.md).
#pragma once

#include <cstddef>
#include <iterator>
#include <string_view>

namespace pa::protocol {

enum class ErrorCode {
  kInvalidMessage,       // 400: message format or schema invalid
  kInvalidPath,          // 400: path validation failed
  kProjectNesting,       // 409: project would nest with an existing one
  kProjectNotFound,      // 404
  kProjectLimit,         // 429: max_projects reached
  kExecutionTimeout,     // 504: a run hit timeouts.execution or timeouts.execution_idle
  kClaudeNotFound,       // 503: the CLI binary is missing
  kProcessActive,        // 409: not allowed while the project is executing
  kResourceLimit,        // 429: a server-wide limit (e.g. the run queue) is full
  kInternalError,        // 500
  kExecutionFailed,      // 502 (ours): the CLI ended without a result
  kForbidden,            // 403 (ours): refused by the server's policy
  kPermissionNotFound,   // 404 (ours): unknown, resolved or expired permission request
  kShuttingDown,         // 503 (ours): the server is shutting down and starts no new run
  kStorageFailed,        // 507 (ours): history, spool or metadata could not be written
  kUnsupportedProtocol,  // 426 (ours): a hello with a protocol older than the server speaks
  kGitFailed,            // 502 (ours): git timed out or failed answering a review request
  kDeviceNotFound,       // 404 (ours): no paired device has this device_id
  kAttachmentNotFound,   // 404 (ours): the project's history refers to no such attachment
  kBudgetExceeded,       // 402 (ours): a daily spend budget is reached (issue 19)
  kSearchFailed,         // 503 (ours): the search index could not answer (or took too long)
  kNodeUnavailable,      // 503 (ours): the cluster node owning the project cannot be reached
};

// Every code, in declaration order (new codes go at the end of the enum and here).
inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::kInvalidMessage,      ErrorCode::kInvalidPath,     ErrorCode::kProjectNesting,
    ErrorCode::kProjectNotFound,     ErrorCode::kProjectLimit,    ErrorCode::kExecutionTimeout,
    ErrorCode::kClaudeNotFound,      ErrorCode::kProcessActive,   ErrorCode::kResourceLimit,
    ErrorCode::kInternalError,       ErrorCode::kExecutionFailed, ErrorCode::kForbidden,
    ErrorCode::kPermissionNotFound,  ErrorCode::kShuttingDown,    ErrorCode::kStorageFailed,
    ErrorCode::kUnsupportedProtocol, ErrorCode::kGitFailed,       ErrorCode::kDeviceNotFound,
    ErrorCode::kAttachmentNotFound,  ErrorCode::kBudgetExceeded,  ErrorCode::kSearchFailed,
    ErrorCode::kNodeUnavailable,
};
static_assert(std::size(kAllErrorCodes) ==
                  static_cast<std::size_t>(ErrorCode::kNodeUnavailable) + 1,
              "kAllErrorCodes must list every ErrorCode");

std::string_view to_string(ErrorCode code);

}  // namespace pa::protocol
