# Renders the systemd unit from pocket-agent-server.service.in, replacing @PREFIX@.
# Used by the install rule in CMakeLists.txt (with the prefix given to `cmake --install`) and by
# tests/systemd-unit-test.sh:
#   cmake -DPREFIX=/usr/local -DOUTPUT=/tmp/pocket-agent-server.service -P deploy/render-unit.cmake
if(NOT DEFINED PREFIX OR PREFIX STREQUAL "" OR NOT DEFINED OUTPUT OR OUTPUT STREQUAL "")
  message(FATAL_ERROR "render-unit.cmake: set PREFIX and OUTPUT")
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/pocket-agent-server.service.in" "${OUTPUT}" @ONLY)
