// The client subcommands of pocket-agent-server: `pair`, `devices list`, `devices revoke ID`
// (through cli/admin_client.hpp, to the running server) and `qr TEXT`. main() only calls
// run_client_command(); the output goes to `out`, one-line errors to `err`.
#pragma once

#include <ostream>

#include "config/config.hpp"

namespace pa::cli {

// Runs loaded.action (kPair, kDeviceList, kDeviceRevoke or kPrintQr); returns the exit status
// (cli/exit_codes.hpp). QR codes get ANSI colours only when `out_is_terminal`.
int run_client_command(const config::Loaded& loaded, std::ostream& out, std::ostream& err,
                       bool out_is_terminal);

}  // namespace pa::cli
