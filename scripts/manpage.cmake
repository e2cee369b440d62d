# manpage.cmake - writes the manual page teleport-pagerduty(1) from the binary's own `help`, so the
# page never disagrees with the CLI. Run by the build (CMakeLists.txt):
#   cmake -DBIN=<binary> -DOUT=<file> -DVERSION=<version> -P scripts/manpage.cmake
execute_process(COMMAND ${BIN} help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "manpage.cmake: `${BIN} help` exited ${rc}")
endif()
# roff: a leading dot or quote would start a request, a backslash an escape.
string(REPLACE "\\" "\\e" help "${help}")
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
file(WRITE ${OUT} ".TH TELEPORT-PAGERDUTY 1 \"\" \"teleport-pagerduty ${VERSION}\" \"User Commands\"
.SH NAME
teleport-pagerduty \\- Teleport access request plugin for PagerDuty
.SH SYNOPSIS
.B teleport-pagerduty
\\fIcommand\\fR [\\fIflags\\fR]
.SH DESCRIPTION
Watches Teleport access requests and reconciles each with PagerDuty: an incident for a pending
request, a note per review, resolution on approval, denial, expiry or deletion, and
auto-approval when the requester is on call.
.SH USAGE
.nf
${help}.fi
.SH FILES
.TP
.I /etc/teleport-pagerduty.toml
default configuration file; \\fBteleport-pagerduty configure\\fR prints an example.
.SH SIGNALS
SIGTERM stops gracefully; SIGHUP re-reads the identity file and the log settings.
")
