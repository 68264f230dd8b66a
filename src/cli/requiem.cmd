@echo off
rem requiem: the Requiem CLI's command line over the Requiem PowerShell module (Windows).
rem Runs requiem-cli.ps1 next to this file with %REQUIEM_PWSH% when set, else pwsh.exe on PATH.
rem Put the module's bin folder on PATH to call it as "requiem". Exit codes: 0 success, 2 a finding, 1 usage or error.
setlocal
set "REQUIEM_PS=%REQUIEM_PWSH%"
if not defined REQUIEM_PS set "REQUIEM_PS=pwsh.exe"
"%REQUIEM_PS%" -NoProfile -NonInteractive -NoLogo -ExecutionPolicy Bypass -File "%~dp0requiem-cli.ps1" %*
exit /b %ERRORLEVEL%
