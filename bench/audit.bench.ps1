#requires -Version 7.4
<#
.SYNOPSIS
    Audit log append cost: one entry appended by the engine (lock, head anchor written and flushed, line appended and
    flushed) against appending the same line to a plain file, with and without a flush; and one Set-RequiemCasRef
    (a ref write plus its audit entry) for scale.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $OutDirectory,
    [int] $Entries = 500,
    [int] $Rounds = 3
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module $ModulePath
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-bench-audit-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null

function Get-Median([double[]] $Values) { $s = @($Values | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }

try {
    # The engine types live in the module's own load context: reach them through an object the module returns.
    $seed = 'audit bench' | Add-RequiemCasObject -Cas (Join-Path $work 'seed')
    $engine = (Get-RequiemAuditLog -Cas (Join-Path $work 'seed'))[0].GetType().Assembly
    $hash = $engine.GetType('Requiem.Engine.Hashing.HashPrimitive')::Select($false)
    $auditLogType = $engine.GetType('Requiem.Engine.Audit.AuditLog')
    $digests = [string[]]@($seed.Hash)
    $details = [Collections.Generic.Dictionary[string, object]]::new()
    $details['ref'] = 'bench/ref'

    $audit = [Collections.Generic.List[double]]::new()
    $threaded = [Collections.Generic.List[double]]::new()
    $plain = [Collections.Generic.List[double]]::new()
    $plainFlushed = [Collections.Generic.List[double]]::new()
    $refSet = [Collections.Generic.List[double]]::new()
    for ($round = 1; $round -le $Rounds; $round++) {
        # 1. The engine's append: exclusive lock, head anchor (temp + fsync + rename + directory fsync), line + fsync.
        $log = $auditLogType::new((Join-Path $work "store-$round"), $hash, $null)
        $sw = [Diagnostics.Stopwatch]::StartNew()
        for ($i = 0; $i -lt $Entries; $i++) { $null = $log.Append('ref.set', $digests, $details) }
        $audit.Add($sw.Elapsed.TotalSeconds / $Entries)
        # 1b. The same number of entries from 4 threads of this process at once (group commit: one flush per batch).
        $shared = Join-Path $work "threads-$round"
        $sw = [Diagnostics.Stopwatch]::StartNew()
        1..4 | ForEach-Object -ThrottleLimit 4 -Parallel {
            $mine = ($using:auditLogType)::new($using:shared, $using:hash, $null)
            for ($i = 0; $i -lt ($using:Entries / 4); $i++) { $null = $mine.Append('ref.set', $using:digests, $using:details) }
        }
        $threaded.Add($sw.Elapsed.TotalSeconds / $Entries)
        if (-not ($auditLogType::new($shared, $hash, $null)).Verify().Valid) { throw 'the threaded audit log does not verify' }
        $line = [IO.File]::ReadLines($log.LogPath) | Select-Object -First 1
        $bytes = [Text.Encoding]::UTF8.GetBytes($line + "`n")

        # 2. The same line appended to a plain file: open, append, close (what a naive logger does), no flush.
        $file = Join-Path $work "plain-$round.jsonl"
        $sw = [Diagnostics.Stopwatch]::StartNew()
        for ($i = 0; $i -lt $Entries; $i++) {
            $fs = [IO.FileStream]::new($file, [IO.FileMode]::Append, [IO.FileAccess]::Write, [IO.FileShare]::ReadWrite, 1)
            $fs.Write($bytes, 0, $bytes.Length); $fs.Dispose()
        }
        $plain.Add($sw.Elapsed.TotalSeconds / $Entries)

        # 3. The same, flushed to disk each time (what durability alone costs).
        $file = Join-Path $work "flushed-$round.jsonl"
        $sw = [Diagnostics.Stopwatch]::StartNew()
        for ($i = 0; $i -lt $Entries; $i++) {
            $fs = [IO.FileStream]::new($file, [IO.FileMode]::Append, [IO.FileAccess]::Write, [IO.FileShare]::ReadWrite, 1)
            $fs.Write($bytes, 0, $bytes.Length); $fs.Flush($true); $fs.Dispose()
        }
        $plainFlushed.Add($sw.Elapsed.TotalSeconds / $Entries)

        # 4. A cmdlet that changes state: Set-RequiemCasRef (ref file written durably, then its audit entry).
        $cas = Join-Path $work "cas-$round"
        $h = ('ref bench' | Add-RequiemCasObject -Cas $cas).Hash
        $n = [Math]::Min($Entries, 200)
        $sw = [Diagnostics.Stopwatch]::StartNew()
        for ($i = 0; $i -lt $n; $i++) { Set-RequiemCasRef -Cas $cas -Name "b/$i" -Hash $h }
        $refSet.Add($sw.Elapsed.TotalSeconds / $n)
        if (-not (Test-RequiemAuditLog -Cas $cas -Quiet)) { throw 'the audit log written by the bench does not verify' }
    }

    $us = { param($s) [Math]::Round($s * 1e6, 1) }
    $results = [ordered]@{
        machine = [ordered]@{ cores = [Environment]::ProcessorCount; os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; load_average = (Get-Content /proc/loadavg -ErrorAction Ignore) }
        entries_per_round = $Entries
        rounds = $Rounds
        line_bytes = $bytes.Length
        audit_append_us_median = & $us (Get-Median $audit)
        audit_append_4_threads_us_median = & $us (Get-Median $threaded)
        plain_append_us_median = & $us (Get-Median $plain)
        plain_append_flushed_us_median = & $us (Get-Median $plainFlushed)
        set_ref_cmdlet_us_median = & $us (Get-Median $refSet)
        audit_append_us_rounds = @($audit | ForEach-Object { & $us $_ })
        audit_append_4_threads_us_rounds = @($threaded | ForEach-Object { & $us $_ })
        plain_append_us_rounds = @($plain | ForEach-Object { & $us $_ })
        plain_append_flushed_us_rounds = @($plainFlushed | ForEach-Object { & $us $_ })
        set_ref_cmdlet_us_rounds = @($refSet | ForEach-Object { & $us $_ })
    }
    $results.audit_vs_plain = [Math]::Round($results.audit_append_us_median / $results.plain_append_us_median, 1)
    $results.audit_vs_plain_flushed = [Math]::Round($results.audit_append_us_median / $results.plain_append_flushed_us_median, 2)
    $json = $results | ConvertTo-Json -Depth 4
    Set-Content -LiteralPath (Join-Path $OutDirectory 'audit.json') -Value $json
    $json
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
