"""Host-side tooling for the ESP32 smart-light firmware (`edgeq device ...`), run by CPython on
the laptop or gateway. The firmware itself, exactly the files a board gets, is device_fw/ in the
source tree; `board_scripts/` are the MicroPython snippets the deploy runs on the board with
`mpremote exec` (never copied to it)."""
