// Exit statuses of the client subcommands (`pair`, `devices list|revoke`, `qr`), listed in their
// --help (config/config.cpp) so scripts can tell "start the server" from "fix the token".
#pragma once

namespace pa::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;        // the server answered an error, timed out, bad TLS
inline constexpr int kExitUsage = 2;         // bad flags or configuration (as for the server)
inline constexpr int kExitNotRunning = 3;    // nothing listens on the server's port
inline constexpr int kExitUnauthorized = 4;  // the token was refused (401) or rate-limited (429)
inline constexpr int kExitForbidden = 5;     // FORBIDDEN: the token's role may not do this
inline constexpr int kExitNotFound = 6;      // DEVICE_NOT_FOUND: no paired device has that id

inline constexpr const char* kExitCodesHelp =
    "Exit status: 0 done; 1 the server answered an error or did not answer in time, or its TLS\n"
    "certificate is not server.tls.cert; 2 bad flags or configuration; 3 the server is not\n"
    "running (connection refused); 4 the token was refused (wrong auth.token / auth_token, or\n"
    "too many failures: wait a minute); 5 FORBIDDEN; 6 DEVICE_NOT_FOUND.";

}  // namespace pa::cli
