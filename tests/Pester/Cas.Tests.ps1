BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:HasB3sum = [bool](Get-Command b3sum -ErrorAction Ignore)
    $script:HasZstd = [bool](Get-Command zstd -ErrorAction Ignore)

    function script:New-Store {
        # A fresh store directory (not yet created: the first put creates it).
        Join-Path $script:Dir ('cas-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    }

    function script:New-RandomFile {
        param([string] $Path, [int] $Length, [int] $Seed, [switch] $Compressible)
        $bytes = [byte[]]::new($Length)
        $rng = [Random]::new($Seed)
        if ($Compressible) {
            $words = [Text.Encoding]::ASCII.GetBytes('alpha beta gamma delta epsilon requiem cas zstd ')
            for ($i = 0; $i -lt $Length; $i++) { $bytes[$i] = $words[($i + $rng.Next(0, 3)) % $words.Length] }
        }
        else { $rng.NextBytes($bytes) }
        [IO.File]::WriteAllBytes($Path, $bytes)
        Get-Item -LiteralPath $Path
    }

    function script:Get-CasName {
        # The independent reference: b3sum of 'cas:' followed by the bytes.
        param([string] $Path)
        $prefixed = Join-Path $script:Dir ('prefixed-' + [guid]::NewGuid().ToString('n'))
        try {
            $fs = [IO.File]::Create($prefixed)
            try {
                $fs.Write([Text.Encoding]::ASCII.GetBytes('cas:'))
                $src = [IO.File]::OpenRead($Path); try { $src.CopyTo($fs) } finally { $src.Dispose() }
            }
            finally { $fs.Dispose() }
            (& b3sum --no-names $prefixed).Trim()
        }
        finally { Remove-Item -LiteralPath $prefixed -ErrorAction Ignore }
    }

    function script:Get-ErrorId {
        param([scriptblock] $Script)
        try { & $Script | Out-Null; return '<no error>' } catch { return $_.FullyQualifiedErrorId }
    }

    function script:Start-Pwsh {
        # Starts a pwsh running a script file with arguments; returns the Process (stdout/stderr redirected to files).
        param([string] $File, [string[]] $Arguments, [string] $StdOut, [string] $StdErr)
        $psi = [Diagnostics.ProcessStartInfo]::new($script:Pwsh)
        foreach ($a in @('-NoProfile', '-NonInteractive', '-File', $File) + $Arguments) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $false
        $psi.RedirectStandardError = $false
        $psi.UseShellExecute = $false
        [Diagnostics.Process]::Start($psi)
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Add-RequiemCasObject / Export-RequiemCasObject round trip' {
    BeforeAll {
        $script:RtStore = New-Store
        $src = Join-Path $Dir 'rt'
        New-Item -ItemType Directory $src | Out-Null
        $sizes = @(0, 1, 63, 1024, 1025, 4096, 65537, 100000, 1MB + 7, (4MB + 1), (6MB + 3))
        $i = 0
        $script:RtFiles = foreach ($s in $sizes) {
            $i++
            New-RandomFile -Path (Join-Path $src "r$i.bin") -Length $s -Seed $i
            New-RandomFile -Path (Join-Path $src "c$i.txt") -Length $s -Seed (100 + $i) -Compressible
        }
    }

    It 'stores <_> files, exports identical bytes, and names objects like b3sum of cas:||bytes' -ForEach @('None', 'Zstd') {
        $compress = $_
        $results = $RtFiles | Add-RequiemCasObject -Cas $RtStore -Compress $compress
        $results.Count | Should -Be $RtFiles.Count
        foreach ($r in $results) {
            $r.Path | Should -Not -BeNullOrEmpty
            $source = Get-Item -LiteralPath $r.Path
            $r.Size | Should -Be $source.Length
            $r.Hash | Should -Match '^[0-9a-f]{64}$'
            [IO.Path]::GetFileName($r.ObjectPath) | Should -BeLike "$($r.Hash)*"
            $r.ObjectPath | Should -BeLike "$RtStore*objects*$($r.Hash.Substring(0, 2))*"
            if ($HasB3sum) { $r.Hash | Should -Be (Get-CasName $r.Path) -Because "b3sum('cas:' + $($r.Path))" }
            $out = Join-Path $Dir ('export-' + [guid]::NewGuid().ToString('n'))
            Export-RequiemCasObject -Cas $RtStore -Hash $r.Hash -Destination $out
            (Get-FileHash -LiteralPath $out).Hash | Should -Be (Get-FileHash -LiteralPath $r.Path).Hash
            Remove-Item -LiteralPath $out
        }
        if ($compress -eq 'Zstd') {
            # New zstd objects are smaller than their content (zstd is used only when it helps); objects stored identity
            # by the first run are deduplicated (Existed).
            @($results | Where-Object { -not $_.Existed -and $_.Encoding -eq 'Zstd' -and $_.StoredSize -ge $_.Size }).Count | Should -Be 0
        }
        else {
            @($results | Where-Object Encoding -ne 'Identity').Count | Should -Be 0
        }
    }

    It 'writes zstd objects as standard frames that the zstd CLI decodes to the original bytes' -Skip:(-not (Get-Command zstd -ErrorAction Ignore)) {
        $store = New-Store
        $results = $RtFiles | Add-RequiemCasObject -Cas $store -Compress Zstd -CompressionLevel 5
        foreach ($r in $results) {
            # Zstd only when it helps: random bytes (and tiny files) do not shrink, so they are stored raw and the result says so.
            if ($r.Path -like '*.bin') { $r.Encoding | Should -Be 'Identity' }
            if ($r.Encoding -eq 'Identity') {
                $r.StoredSize | Should -Be $r.Size
                ($r.Path -like '*.bin' -or $r.Size -le 1025) | Should -BeTrue -Because "$($r.Path) compresses"
                continue
            }
            $r.Encoding | Should -Be 'Zstd'
            $r.ObjectPath | Should -BeLike '*.zst'
            $decoded = Join-Path $Dir ('zstd-' + [guid]::NewGuid().ToString('n'))
            & zstd -q -d -f -o $decoded $r.ObjectPath
            $LASTEXITCODE | Should -Be 0
            (Get-FileHash -LiteralPath $decoded).Hash | Should -Be (Get-FileHash -LiteralPath $r.Path).Hash
            Remove-Item -LiteralPath $decoded
            if ($r.Path -like '*.txt' -and $r.Size -gt 4096) { $r.StoredSize | Should -BeLessThan ($r.Size / 2) }
        }
        $info = Get-RequiemCasObject -Cas $store -Hash $results[-1].Hash
        $info.Size | Should -Be $results[-1].Size
        $info.Verified | Should -BeTrue
    }

    It 'deduplicates: a second put of the same bytes says Existed and writes nothing' {
        $store = New-Store
        $first = Add-RequiemCasObject -Cas $store -InputObject 'same bytes'
        $second = Add-RequiemCasObject -Cas $store -InputObject 'same bytes'
        $first.Existed | Should -BeFalse
        $second.Existed | Should -BeTrue
        $second.Hash | Should -Be $first.Hash
        $first.Hash | Should -Be (Get-RequiemDigest -InputObject 'same bytes' -Domain Cas).Hash
        @(Get-ChildItem -Recurse -File (Join-Path $store 'objects')).Count | Should -Be 1
        $stats = Get-RequiemCasStatistic -Cas $store
        $stats.ObjectCount | Should -Be 1
        $stats.DedupHits | Should -Be 1
        $stats.PutsWritten | Should -Be 1
    }

    It 'stores strings as UTF-8 and byte arrays as is; -Raw and -AsByteStream read them back' {
        $store = New-Store
        $text = Add-RequiemCasObject -Cas $store -InputObject "héllo`nwörld"
        $bytes = Add-RequiemCasObject -Cas $store -InputObject ([byte[]](0, 1, 2, 255))
        $text.Path | Should -BeNullOrEmpty
        Export-RequiemCasObject -Cas $store -Hash $text.Hash -Raw | Should -BeExactly "héllo`nwörld"
        $back = Export-RequiemCasObject -Cas $store -Hash $bytes.Hash -AsByteStream
        $back.GetType().Name | Should -Be 'Byte[]'
        $back | Should -Be ([byte[]](0, 1, 2, 255))
    }

    It 'takes Get-ChildItem output, wildcards, and -LiteralPath' {
        $store = New-Store
        $src = Join-Path $Dir 'pipe-cas'
        New-Item -ItemType Directory $src | Out-Null
        1..5 | ForEach-Object { Set-Content -LiteralPath (Join-Path $src "f$_.txt") -Value "cas file $_" -NoNewline }
        [IO.File]::WriteAllText((Join-Path $src 'odd[1].txt'), 'odd')
        (Get-ChildItem $src -File | Add-RequiemCasObject -Cas $store).Count | Should -Be 6
        (Add-RequiemCasObject -Cas $store -Path (Join-Path $src 'f*.txt')).Count | Should -Be 5
        (Add-RequiemCasObject -Cas $store -LiteralPath (Join-Path $src 'odd[1].txt')).Hash | Should -Be (Get-RequiemDigest -InputObject 'odd' -Domain Cas).Hash
    }

    It 'uses cas.compression from the config when -Compress is not given, and REQUIEM_CAS as the default store' {
        $store = New-Store
        $config = Join-Path $Dir 'zstd-config.json'
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","cas":{"compression":"zstd","zstd_level":7}}'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $config; REQUIEM_CAS = $store } -Script @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$r = Add-RequiemCasObject -InputObject ('z' * 5000)
`$r.Encoding.ToString()
`$r.ObjectPath
(Add-RequiemCasObject -InputObject 'plain' -Compress None).Encoding.ToString()
"@
        $out[0] | Should -Be 'Zstd'
        $out[1] | Should -BeLike "$store*"
        $out[2] | Should -Be 'Identity'
    }
}

Describe 'Get-RequiemCasObject' {
    BeforeAll {
        $script:GStore = New-Store
        $script:GObjects = 1..5 | ForEach-Object { Add-RequiemCasObject -Cas $GStore -InputObject "object $_" }
    }

    It 'lists every object when no hash is given' {
        $all = Get-RequiemCasObject -Cas $GStore
        $all.Count | Should -Be 5
        ($all.Hash | Sort-Object) | Should -Be ($GObjects.Hash | Sort-Object)
    }

    It 'resolves unique prefixes and verifies the object' {
        $o = $GObjects[2]
        $info = Get-RequiemCasObject -Cas $GStore -Hash $o.Hash.Substring(0, 6)
        $info.Hash | Should -Be $o.Hash
        $info.Verified | Should -BeTrue
        $info.Size | Should -Be 8
        (Get-RequiemCasObject -Cas $GStore -Hash $o.Hash.ToUpperInvariant()).Hash | Should -Be $o.Hash
        ($GObjects | Get-RequiemCasObject -Cas $GStore).Count | Should -Be 5
    }

    It 'refuses an ambiguous prefix with AmbiguousHashPrefix' {
        $store = New-Store
        # Find two strings whose CAS names share their first four hex digits.
        $seen = @{}
        $pair = $null
        for ($i = 0; -not $pair; $i++) {
            $h = (Get-RequiemDigest -InputObject "collide $i" -Domain Cas).Hash
            $p = $h.Substring(0, 4)
            if ($seen.ContainsKey($p)) { $pair = @($seen[$p], "collide $i", $p) } else { $seen[$p] = "collide $i" }
        }
        Add-RequiemCasObject -Cas $store -InputObject $pair[0] | Out-Null
        Add-RequiemCasObject -Cas $store -InputObject $pair[1] | Out-Null
        Get-ErrorId { Get-RequiemCasObject -Cas $store -Hash $pair[2] -ErrorAction Stop } |
            Should -Be 'AmbiguousHashPrefix,Requiem.PowerShell.GetRequiemCasObjectCommand'
        Get-ErrorId { Export-RequiemCasObject -Cas $store -Hash $pair[2] -Raw -ErrorAction Stop } |
            Should -Be 'AmbiguousHashPrefix,Requiem.PowerShell.ExportRequiemCasObjectCommand'
    }

    It 'tab-completes -Hash from the store' {
        $o = $GObjects[0]
        $line = "Get-RequiemCasObject -Cas '$GStore' -Hash $($o.Hash.Substring(0, 3))"
        $completions = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
        $completions.CompletionText | Should -Contain $o.Hash
        foreach ($m in $completions) { $m.CompletionText | Should -BeLike "$($o.Hash.Substring(0, 3))*" }
    }

    It 'reports a missing object as CasObjectNotFound' {
        Get-ErrorId { Get-RequiemCasObject -Cas $GStore -Hash ('0' * 64) -ErrorAction Stop } |
            Should -Be 'CasObjectNotFound,Requiem.PowerShell.GetRequiemCasObjectCommand'
    }
}

Describe 'Corruption' {
    BeforeEach {
        $script:CStore = New-Store
        $src = Join-Path $Dir ('corrupt-' + [guid]::NewGuid().ToString('n'))
        New-Item -ItemType Directory $src | Out-Null
        $script:CFiles = 1..6 | ForEach-Object { New-RandomFile -Path (Join-Path $src "f$_.bin") -Length (20000 + $_) -Seed (500 + $_) -Compressible }
        $script:CId = $CFiles[0..2] | Add-RequiemCasObject -Cas $CStore -Compress None
        $script:CZ = $CFiles[3..5] | Add-RequiemCasObject -Cas $CStore -Compress Zstd
    }

    It 'finds a flipped byte and a truncated object with -All, and Export/Get refuse them' {
        # Flip one byte of an identity object, truncate a zstd object.
        $flipped = $CId[1]
        $bytes = [IO.File]::ReadAllBytes($flipped.ObjectPath)
        $bytes[1000] = $bytes[1000] -bxor 0x40
        [IO.File]::WriteAllBytes($flipped.ObjectPath, $bytes)
        $truncated = $CZ[0]
        $fs = [IO.File]::Open($truncated.ObjectPath, 'Open', 'ReadWrite'); $fs.SetLength([Math]::Max(1, $fs.Length - 7)); $fs.Dispose()

        $report = Test-RequiemCas -All -Cas $CStore
        $report.Valid | Should -BeFalse
        $report.Checked | Should -Be 6
        ($report.Corrupt.Hash | Sort-Object) | Should -Be (@($flipped.Hash, $truncated.Hash) | Sort-Object)
        foreach ($c in $report.Corrupt) { $c.Reason | Should -Not -BeNullOrEmpty }
        Test-RequiemCas -All -Cas $CStore -Quiet | Should -BeFalse

        $dest = Join-Path $Dir ('refused-' + [guid]::NewGuid().ToString('n'))
        foreach ($bad in $flipped, $truncated) {
            Get-ErrorId { Export-RequiemCasObject -Cas $CStore -Hash $bad.Hash -Destination $dest -ErrorAction Stop } |
                Should -Be 'CasObjectCorrupt,Requiem.PowerShell.ExportRequiemCasObjectCommand'
            Test-Path -LiteralPath $dest | Should -BeFalse
            @(Get-ChildItem -LiteralPath $Dir -Filter '.refused-*' -Force).Count | Should -Be 0 -Because 'no temp file is left beside the destination'
            Get-ErrorId { Export-RequiemCasObject -Cas $CStore -Hash $bad.Hash -AsByteStream -ErrorAction Stop } |
                Should -Be 'CasObjectCorrupt,Requiem.PowerShell.ExportRequiemCasObjectCommand'
            Get-ErrorId { Get-RequiemCasObject -Cas $CStore -Hash $bad.Hash -ErrorAction Stop } |
                Should -Be 'CasObjectCorrupt,Requiem.PowerShell.GetRequiemCasObjectCommand'
        }
        # A good object still exports.
        Export-RequiemCasObject -Cas $CStore -Hash $CId[0].Hash -Destination $dest
        (Get-FileHash $dest).Hash | Should -Be (Get-FileHash $CFiles[0]).Hash

        # Putting the original bytes again heals a truncated identity object.
        $fs = [IO.File]::Open($CId[2].ObjectPath, 'Open', 'ReadWrite'); $fs.SetLength(10); $fs.Dispose()
        (Add-RequiemCasObject -Cas $CStore -LiteralPath $CFiles[2].FullName).Existed | Should -BeFalse
        (Get-RequiemCasObject -Cas $CStore -Hash $CId[2].Hash).Verified | Should -BeTrue
    }

    It 'reaches every object over repeated -Sample runs (rotating cursor) and reports the sampled hashes' {
        $files = Get-ChildItem -Recurse -File (Join-Path $CStore 'objects')
        $files.Count | Should -Be 6
        $seen = [Collections.Generic.HashSet[string]]::new()
        foreach ($run in 1..3) {
            $r = Test-RequiemCas -Sample 2 -Cas $CStore
            $r.Mode | Should -Be 'Sample'
            $r.Checked | Should -Be 2
            $r.Total | Should -Be 6
            foreach ($h in $r.SampledHashes) { [void]$seen.Add($h) }
        }
        $seen.Count | Should -Be 6 -Because 'three samples of two reach all six objects'
        Test-Path (Join-Path $CStore 'verify-cursor.json') | Should -BeTrue

        # A corrupt object is found by the sample run that reaches it, moved to quarantine, and listed by every later sample.
        $bytes = [IO.File]::ReadAllBytes($CId[0].ObjectPath); $bytes[0] = $bytes[0] -bxor 1; [IO.File]::WriteAllBytes($CId[0].ObjectPath, $bytes)
        $runs = foreach ($run in 1..3) { , @((Test-RequiemCas -Sample 2 -Cas $CStore).Corrupt | ForEach-Object Hash) }
        @($runs | ForEach-Object { $_ } | Select-Object -Unique) | Should -Be @($CId[0].Hash)
        $runs[-1] | Should -Be @($CId[0].Hash) -Because 'a sample after the damage was found still reports it'
    }

    It 'reports leftover temp files and files that are not objects, and missing referenced objects' {
        Set-Content -LiteralPath (Join-Path $CStore 'tmp/leftover.tmp') -Value 'partial'
        Set-Content -LiteralPath (Join-Path $CStore 'objects/zz-not-an-object') -Value 'junk'
        $manifest = '{"kind":"test","references":["' + ('ab' * 32) + '"],"requiem_manifest":"1"}'
        $m = Add-RequiemCasObject -Cas $CStore -InputObject $manifest
        Set-RequiemCasRef -Cas $CStore -Name 'results/m' -Hash $m.Hash
        $r = Test-RequiemCas -All -Cas $CStore
        $r.TempFiles.Path | Should -Be (Join-Path $CStore 'tmp/leftover.tmp')
        $r.ForeignFiles | Should -Contain (Join-Path $CStore 'objects/zz-not-an-object')
        $r.Missing.Hash | Should -Be ('ab' * 32)
        $r.Missing.ReferencedBy | Should -Be "manifest:$($m.Hash)"
        $r.Valid | Should -BeFalse
    }
}

Describe 'Crash safety' {
    It 'survives SIGKILL of writers at random moments: the store verifies and every reported object is intact' {
        $store = New-Store
        $work = Join-Path $Dir 'crash'
        New-Item -ItemType Directory $work | Out-Null
        $writer = Join-Path $work 'writer.ps1'
        Set-Content -LiteralPath $writer -Value @'
param($ModulePath, $Cas, $Seed, $Log, $Work)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$rng = [Random]::new([int]$Seed)
$n = 0
while ($true) {
    $n++
    $items = foreach ($k in 1..40) {
        $b = [byte[]]::new($rng.Next(0, 150000))
        $rng.NextBytes($b)
        if ($k % 2) { [Array]::Clear($b, 0, [int]($b.Length / 2)) }
        , $b
    }
    $enc = if ($n % 2) { 'Zstd' } else { 'None' }
    $items | Add-RequiemCasObject -Cas $Cas -Compress $enc | ForEach-Object { [IO.File]::AppendAllText($Log, $_.Hash + "`n") }
    # A large file goes through the streaming path (over 4 MiB).
    $big = Join-Path $Work "big-$Seed.bin"
    $bb = [byte[]]::new(5MB + $rng.Next(0, 1000)); $rng.NextBytes($bb); [IO.File]::WriteAllBytes($big, $bb)
    (Add-RequiemCasObject -Cas $Cas -LiteralPath $big -Compress $enc).Hash | ForEach-Object { [IO.File]::AppendAllText($Log, $_ + "`n") }
}
'@
        $log = Join-Path $work 'reported.log'
        $rng = [Random]::new(7)
        $kills = 12
        for ($i = 1; $i -le $kills; $i++) {
            $before = @(Get-Content -LiteralPath $log -ErrorAction Ignore).Count
            $p = Start-Pwsh -File $writer -Arguments @($ModulePath, $store, "$i", $log, $work)
            # Wait until this writer has reported its first batch (it is in its put loop), then kill it at a random moment.
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            while (@(Get-Content -LiteralPath $log -ErrorAction Ignore).Count -le $before -and -not $p.HasExited -and [DateTime]::UtcNow -lt $deadline) {
                Start-Sleep -Milliseconds 50
            }
            Start-Sleep -Milliseconds $rng.Next(0, 1500)
            $p.HasExited | Should -BeFalse -Because 'the writer must still be writing when it is killed'
            $p.Kill()   # SIGKILL on Unix
            $p.WaitForExit()
        }
        $reported = @(Get-Content -LiteralPath $log -ErrorAction Ignore | Where-Object { $_ } | Sort-Object -Unique)
        $reported.Count | Should -BeGreaterThan 0 -Because 'writers reported objects before being killed'

        $report = Test-RequiemCas -All -Cas $store
        $report.Valid | Should -BeTrue
        $report.Corrupt.Count | Should -Be 0
        $report.ForeignFiles.Count | Should -Be 0
        $report.Checked | Should -BeGreaterOrEqual $reported.Count
        foreach ($h in $reported) { (Get-RequiemCasObject -Cas $store -Hash $h).Verified | Should -BeTrue }

        # Independent check of identity objects: the file name is b3sum('cas:' + content).
        if ($HasB3sum) {
            $identity = Get-ChildItem -Recurse -File (Join-Path $store 'objects') | Where-Object Extension -ne '.zst' | Select-Object -First 15
            foreach ($f in $identity) { Get-CasName $f.FullName | Should -Be $f.Name }
        }
        # Interrupted writes leave only temp files, which GC clears once they are older than the grace period.
        Get-ChildItem (Join-Path $store 'tmp') -File | ForEach-Object { $_.LastWriteTimeUtc = [datetime]::UtcNow.AddDays(-15) }
        $gc = Optimize-RequiemCas -Cas $store -Force
        @($gc.Candidates | Where-Object Kind -eq 'Object').Count | Should -Be 0 -Because 'every object is younger than the grace period'
        (Test-RequiemCas -All -Cas $store).TempFiles.Count | Should -Be 0
        foreach ($h in $reported) { (Get-RequiemCasObject -Cas $store -Hash $h).Verified | Should -BeTrue }
    }
}

Describe 'Concurrency' {
    It 'several pwsh processes putting overlapping sets at once (<Mode> encodings): no error, exact object count, exactly one writer per object file' -ForEach @(
        @{ Mode = 'mixed'; Encodings = @('None', 'Zstd', 'None', 'Zstd') }, @{ Mode = 'same'; Encodings = @('None', 'None', 'None', 'None') }
    ) {
        $store = New-Store
        $src = Join-Path $Dir "concurrent-$Mode"
        New-Item -ItemType Directory $src | Out-Null
        $files = 0..399 | ForEach-Object { New-RandomFile -Path (Join-Path $src ('f{0:d3}.bin' -f $_)) -Length (1000 + $_ * 37) -Seed (9000 + $_) }
        $script = Join-Path $Dir "concurrent-$Mode.ps1"
        Set-Content -LiteralPath $script -Value @'
param($ModulePath, $Cas, $Src, $Start, $Out, $Compress)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$all = Get-ChildItem -LiteralPath $Src -File | Sort-Object Name
$mine = foreach ($i in 0..199) { $all[([int]$Start + $i) % $all.Count] }
$common = $all[0..49]
$r = @($common + $mine) | Add-RequiemCasObject -Cas $Cas -Compress $Compress
$r | ForEach-Object { '{0} {1}' -f $_.Hash, $_.Existed } | Set-Content -LiteralPath $Out
'@
        $procs = foreach ($k in 0..3) {
            $out = Join-Path $Dir "concurrent-$Mode-$k.txt"
            @{ Out = $out; P = (Start-Pwsh -File $script -Arguments @($ModulePath, $store, $src, "$($k * 100)", $out, $Encodings[$k])) }
        }
        foreach ($p in $procs) { $p.P.WaitForExit(); $p.P.ExitCode | Should -Be 0 }
        $lines = foreach ($p in $procs) { Get-Content -LiteralPath $p.Out }
        $lines.Count | Should -Be (4 * 250)
        $written = @($lines | Where-Object { $_ -like '* False' })
        $distinct = @($lines | ForEach-Object { ($_ -split ' ')[0] } | Sort-Object -Unique)
        $distinct.Count | Should -Be 400
        # Processes 0 and 2 store identity, 1 and 3 zstd: an object may legitimately exist in both encodings, but every
        # file on disk was written by exactly one put, and every other put of it reported Existed.
        $objectFiles = @(Get-ChildItem -Recurse -File (Join-Path $store 'objects'))
        $written.Count | Should -Be $objectFiles.Count -Because 'exactly one put wrote each object file; all others deduplicated'
        ($objectFiles | ForEach-Object { $_.Name -replace '\.zst$' } | Sort-Object -Unique) | Should -Be $distinct
        $objectFiles.Count | Should -BeLessOrEqual 800
        if ($Mode -eq 'same') { $written.Count | Should -Be 400 }

        $stats = Get-RequiemCasStatistic -Cas $store
        $stats.ObjectCount | Should -Be 400
        $stats.FileCount | Should -Be $objectFiles.Count
        $stats.PutsWritten | Should -Be $objectFiles.Count
        $stats.DedupHits | Should -Be (4 * 250 - $objectFiles.Count)
        (Test-RequiemCas -All -Cas $store).Valid | Should -BeTrue
        @(Get-ChildItem (Join-Path $store 'tmp') -File).Count | Should -Be 0
    }
}

Describe 'Garbage collection (Optimize-RequiemCas)' {
    BeforeEach {
        $script:GcStore = New-Store
        $old = (Get-Date).ToUniversalTime().AddDays(-30)
        function script:Add-Old { param($Value) $r = Add-RequiemCasObject -Cas $GcStore -InputObject $Value; [IO.File]::SetLastWriteTimeUtc($r.ObjectPath, $old); $r }
        $script:Direct = Add-Old 'referenced directly by a ref'
        $script:ViaManifest = Add-Old 'referenced by the manifest'
        $script:Nested = Add-Old 'referenced by a nested manifest'
        $inner = Add-Old ('{"kind":"inner","references":["' + $Nested.Hash + '"],"requiem_manifest":"1"}')
        # Only references listed under "manifests" are read as manifests.
        $outer = Add-Old ('{"body":{"x":1},"kind":"outer","manifests":["' + $inner.Hash + '"],"references":["' + $ViaManifest.Hash + '","' + $inner.Hash + '"],"requiem_manifest":"1"}')
        $script:Inner = $inner
        $script:Outer = $outer
        $script:OldGarbage = Add-Old 'unreferenced and old'
        $script:YoungGarbage = Add-RequiemCasObject -Cas $GcStore -InputObject 'unreferenced and young'
        Set-RequiemCasRef -Cas $GcStore -Name 'keep/direct' -Hash $Direct.Hash
        Set-RequiemCasRef -Cas $GcStore -Name 'results/outer' -Hash $Outer.Hash
        foreach ($o in $Direct, $Outer) { [IO.File]::SetLastWriteTimeUtc($o.ObjectPath, $old) }   # SetRef freshened them
        $script:OldTemp = Join-Path $GcStore 'tmp/old.tmp'
        $script:YoungTemp = Join-Path $GcStore 'tmp/young.tmp'
        Set-Content $OldTemp 'x'; [IO.File]::SetLastWriteTimeUtc($OldTemp, $old)
        Set-Content $YoungTemp 'y'
    }

    It '-WhatIf deletes nothing and reports what would go' {
        $before = @(Get-ChildItem -Recurse -File $GcStore).FullName | Sort-Object
        $r = Optimize-RequiemCas -Cas $GcStore -WhatIf
        $r.DryRun | Should -BeTrue
        ($r.Candidates | Where-Object Kind -eq 'Object').Hash | Should -Be $OldGarbage.Hash
        ($r.Candidates | Where-Object Kind -eq 'TempFile').Path | Should -Be $OldTemp
        $r.RemovedCount | Should -Be 0
        $r.BytesFreed | Should -BeGreaterThan 0
        @(Get-ChildItem -Recurse -File $GcStore).FullName | Sort-Object | Should -Be $before
    }

    It 'keeps referenced objects (directly and through nested manifests) and young ones; removes old unreferenced objects and stale temp files' {
        $r = Optimize-RequiemCas -Cas $GcStore -Confirm:$false
        $r.DryRun | Should -BeFalse
        $r.GracePeriod | Should -Be ([TimeSpan]::FromDays(14))
        $r.RemovedCount | Should -Be 2
        $r.BytesFreed | Should -Be ($OldGarbage.StoredSize + 2)
        Test-Path $OldGarbage.ObjectPath | Should -BeFalse
        Test-Path $OldTemp | Should -BeFalse
        Test-Path $YoungTemp | Should -BeTrue
        foreach ($kept in $Direct, $ViaManifest, $Nested, $Inner, $Outer, $YoungGarbage) {
            (Get-RequiemCasObject -Cas $GcStore -Hash $kept.Hash).Verified | Should -BeTrue
        }
        (Test-RequiemCas -All -Cas $GcStore).Valid | Should -BeTrue

        # With a zero grace period (and -Force instead of -Confirm:$false) the young garbage goes too.
        $r2 = Optimize-RequiemCas -Cas $GcStore -GracePeriod 0 -Force
        $r2.Candidates.Hash | Should -Contain $YoungGarbage.Hash
        Test-Path $YoungGarbage.ObjectPath | Should -BeFalse
        foreach ($kept in $Direct, $ViaManifest, $Nested, $Inner, $Outer) { Test-Path $kept.ObjectPath | Should -BeTrue }

        # Removing the ref makes the whole manifest tree collectable.
        Remove-RequiemCasRef -Cas $GcStore -Name 'results/outer'
        Optimize-RequiemCas -Cas $GcStore -GracePeriod 0 -Force | Out-Null
        foreach ($gone in $ViaManifest, $Nested, $Inner, $Outer) { Test-Path $gone.ObjectPath | Should -BeFalse }
        Test-Path $Direct.ObjectPath | Should -BeTrue
    }

    It 'stops without removing anything when a reachable manifest is corrupt' {
        $bytes = [IO.File]::ReadAllBytes($Outer.ObjectPath); $bytes[3] = $bytes[3] -bxor 1; [IO.File]::WriteAllBytes($Outer.ObjectPath, $bytes)
        [IO.File]::SetLastWriteTimeUtc($Outer.ObjectPath, (Get-Date).ToUniversalTime().AddDays(-30))
        Get-ErrorId { Optimize-RequiemCas -Cas $GcStore -GracePeriod 0 -Force } | Should -Be 'CasGcAborted,Requiem.PowerShell.OptimizeRequiemCasCommand'
        Test-Path $OldGarbage.ObjectPath | Should -BeTrue
        Test-Path $ViaManifest.ObjectPath | Should -BeTrue
    }

    It 'keeps an old object that a put deduplicates (freshened) even if unreferenced' {
        Add-RequiemCasObject -Cas $GcStore -InputObject 'unreferenced and old' | Select-Object -ExpandProperty Existed | Should -BeTrue
        Optimize-RequiemCas -Cas $GcStore -Force | Out-Null
        Test-Path $OldGarbage.ObjectPath | Should -BeTrue
    }
}

Describe 'Refs' {
    It 'sets, lists, filters and removes refs; validates names and hashes' {
        $store = New-Store
        $o = Add-RequiemCasObject -Cas $store -InputObject 'ref target'
        Set-RequiemCasRef -Cas $store -Name 'results/run-1' -Hash $o.Hash.Substring(0, 10)
        $o | Set-RequiemCasRef -Cas $store -Name 'pinned'
        (Get-RequiemCasRef -Cas $store).Name | Should -Be @('pinned', 'results/run-1')
        (Get-RequiemCasRef -Cas $store -Name 'results/*').Hash | Should -Be $o.Hash
        (Get-Content -Raw (Join-Path $store 'refs/results/run-1')).Trim() | Should -Be $o.Hash
        Get-ErrorId { Get-RequiemCasRef -Cas $store -Name 'nope' -ErrorAction Stop } | Should -Be 'RefNotFound,Requiem.PowerShell.GetRequiemCasRefCommand'
        # exact names from the pipeline: each found (or reported) on its own, in order
        $got = 'pinned', 'nope', 'results/run-1' | Get-RequiemCasRef -Cas $store -ErrorVariable refErrs -ErrorAction SilentlyContinue
        $got.Name | Should -Be @('pinned', 'results/run-1')
        $got[0].Exists | Should -BeTrue
        @($refErrs).Count | Should -Be 1
        Get-ErrorId { Get-RequiemCasRef -Cas $store -Name '../escape' -ErrorAction Stop } | Should -Be 'InvalidRefName,Requiem.PowerShell.GetRequiemCasRefCommand'
        Get-ErrorId { Set-RequiemCasRef -Cas $store -Name '../escape' -Hash $o.Hash -ErrorAction Stop } | Should -Be 'InvalidRefName,Requiem.PowerShell.SetRequiemCasRefCommand'
        Get-ErrorId { Set-RequiemCasRef -Cas $store -Name 'x' -Hash ('1' * 64) -ErrorAction Stop } | Should -Be 'CasObjectNotFound,Requiem.PowerShell.SetRequiemCasRefCommand'
        Remove-RequiemCasRef -Cas $store -Name 'pinned' -WhatIf
        (Get-RequiemCasRef -Cas $store).Count | Should -Be 2
        Remove-RequiemCasRef -Cas $store -Name 'pinned', 'results/run-1'
        @(Get-RequiemCasRef -Cas $store).Count | Should -Be 0
        Test-Path (Join-Path $store 'refs/results') | Should -BeFalse
    }
}

Describe 'Bad input' {
    BeforeAll {
        $script:BStore = New-Store
        $script:BGood = Add-RequiemCasObject -Cas $BStore -InputObject 'good'
        function script:Get-StoreFiles { @(Get-ChildItem -Recurse -File $BStore | Where-Object Name -ne 'counters.json').FullName | Sort-Object }
        $script:BBefore = Get-StoreFiles
    }

    It 'missing path -> FileNotFound, directory -> PathIsDirectory, and nothing is written' {
        $missing = Join-Path $Dir 'no-such-file.bin'
        Get-ErrorId { Add-RequiemCasObject -Cas $BStore -LiteralPath $missing -ErrorAction Stop } | Should -Be 'FileNotFound,Requiem.PowerShell.AddRequiemCasObjectCommand'
        Get-ErrorId { Add-RequiemCasObject -Cas $BStore -Path (Join-Path $Dir 'no-such-*.bin'), $missing -ErrorAction Stop } | Should -Be 'FileNotFound,Requiem.PowerShell.AddRequiemCasObjectCommand'
        Get-ErrorId { Add-RequiemCasObject -Cas $BStore -LiteralPath $Dir -ErrorAction Stop } | Should -Be 'PathIsDirectory,Requiem.PowerShell.AddRequiemCasObjectCommand'
        Get-ErrorId { Get-Item $Dir | Add-RequiemCasObject -Cas $BStore -ErrorAction Stop } | Should -Be 'PathIsDirectory,Requiem.PowerShell.AddRequiemCasObjectCommand'
        Get-ErrorId { Add-RequiemCasObject -Cas $BStore -InputObject @{ a = 1 } -ErrorAction Stop } | Should -Be 'UnsupportedInputType,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $err = $null
        Add-RequiemCasObject -Cas $BStore -LiteralPath $missing -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].TargetObject | Should -Be $missing
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Get-StoreFiles | Should -Be $BBefore
    }

    It 'an unreadable file -> FileReadError, others in the same pipeline still stored' {
        $unreadable = Join-Path $Dir 'unreadable.bin'
        $readable = Join-Path $Dir 'readable.bin'
        Set-Content $unreadable 'secret'; Set-Content $readable 'public'
        & chmod 000 $unreadable
        $store = New-Store
        $script = Join-Path $Dir 'unreadable.ps1'
        Set-Content -LiteralPath $script -Value @"
Import-Module '$ModulePath'
`$r = Add-RequiemCasObject -Cas '$store' -LiteralPath '$unreadable','$readable' -ErrorVariable e -ErrorAction SilentlyContinue
`$e[0].FullyQualifiedErrorId
`$e[0].TargetObject
@(`$r).Count
"@
        if ((& id -u) -eq '0') {
            # Root reads any file: drop the capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) for the child.
            if (-not (Get-Command setpriv -ErrorAction Ignore)) { Set-ItResult -Skipped -Because 'running as root without setpriv: root reads any file'; return }
            $out = & setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-dac_override,-dac_read_search $Pwsh -NoProfile -NonInteractive -File $script
        }
        else {
            $out = & $Pwsh -NoProfile -NonInteractive -File $script
        }
        $out[0] | Should -Be 'FileReadError,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $out[1] | Should -Be $unreadable
        $out[2] | Should -Be '1'
    }

    It 'refuses bad hashes (<Name>) with InvalidDigest and touches nothing' -ForEach @(
        @{ Name = 'non-hex'; Bad = 'xyz' }, @{ Name = 'too short'; Bad = 'abc' }, @{ Name = '65 chars'; Bad = ('a' * 65) }
        @{ Name = '64 non-hex'; Bad = ('g' * 64) }, @{ Name = 'traversal'; Bad = '../../../etc/passwd' }
        @{ Name = 'relative folder'; Bad = '../objects' }, @{ Name = 'slash inside'; Bad = ('ab/' + 'c' * 61) }
        @{ Name = 'NUL byte'; Bad = '' + [char]0 + 'abcd' }
    ) {
        foreach ($cmd in @(
                @{ Id = 'GetRequiemCasObjectCommand'; S = { Get-RequiemCasObject -Cas $BStore -Hash $Bad -ErrorAction Stop } }
                @{ Id = 'ExportRequiemCasObjectCommand'; S = { Export-RequiemCasObject -Cas $BStore -Hash $Bad -Destination (Join-Path $Dir 'x.out') -ErrorAction Stop } }
                @{ Id = 'SetRequiemCasRefCommand'; S = { Set-RequiemCasRef -Cas $BStore -Name 'r' -Hash $Bad -ErrorAction Stop } }
            )) {
            Get-ErrorId $cmd.S | Should -Be "InvalidDigest,Requiem.PowerShell.$($cmd.Id)"
        }
        Test-Path (Join-Path $Dir 'x.out') | Should -BeFalse
        Get-StoreFiles | Should -Be $BBefore
    }

    It 'refuses a directory that is not a store, and a file, with NotACasStore and writes nothing there' {
        $notStore = Join-Path $Dir 'not-a-store'
        New-Item -ItemType Directory $notStore | Out-Null
        Set-Content (Join-Path $notStore 'precious.txt') 'do not touch'
        $file = Join-Path $Dir 'a-file'
        Set-Content $file 'x'
        foreach ($s in @(
                { Add-RequiemCasObject -Cas $notStore -InputObject 'x' }
                { Get-RequiemCasObject -Cas $notStore }
                { Test-RequiemCas -Cas $notStore -All }
                { Optimize-RequiemCas -Cas $notStore -Force }
                { Get-RequiemCasStatistic -Cas $file }
            )) {
            (Get-ErrorId $s) | Should -BeLike 'NotACasStore,Requiem.PowerShell.*'
        }
        @(Get-ChildItem -Force $notStore).Name | Should -Be @('precious.txt')
        Get-ErrorId { Test-RequiemCas -Cas (Join-Path $Dir 'absent-store') } | Should -Be 'CasNotFound,Requiem.PowerShell.TestRequiemCasCommand'
        Test-Path (Join-Path $Dir 'absent-store') | Should -BeFalse
        $badConfig = New-Store
        New-Item -ItemType Directory $badConfig | Out-Null
        Set-Content (Join-Path $badConfig 'config') '{"cas_version":"v9"}'
        Get-ErrorId { Get-RequiemCasObject -Cas $badConfig } | Should -Be 'UnsupportedCasVersion,Requiem.PowerShell.GetRequiemCasObjectCommand'
    }

    It 'Export writes into a folder under the hash, refuses a reused file destination, a missing folder, and -NoClobber over an existing file' {
        $folder = Join-Path $Dir 'export-folder'
        New-Item -ItemType Directory $folder | Out-Null
        $other = Add-RequiemCasObject -Cas $BStore -InputObject 'other object'
        $files = $BGood.Hash, $other.Hash | Export-RequiemCasObject -Cas $BStore -Destination $folder -PassThru
        $files.Name | Should -Be @($BGood.Hash, $other.Hash)
        Get-Content -Raw (Join-Path $folder $BGood.Hash) | Should -Be 'good'
        $one = Join-Path $Dir 'one-file.bin'
        $null = $BGood.Hash, $other.Hash | Export-RequiemCasObject -Cas $BStore -Destination $one -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -Be 'DestinationReused,Requiem.PowerShell.ExportRequiemCasObjectCommand'
        Get-Content -Raw $one | Should -Be 'good'   # the first export was not overwritten
        Get-ErrorId { Export-RequiemCasObject -Cas $BStore -Hash $BGood.Hash -Destination (Join-Path $Dir 'nope/out.bin') -ErrorAction Stop } | Should -Be 'DirectoryNotFound,Requiem.PowerShell.ExportRequiemCasObjectCommand'
        $existing = Join-Path $Dir 'existing.txt'
        Set-Content $existing 'keep me'
        Get-ErrorId { Export-RequiemCasObject -Cas $BStore -Hash $BGood.Hash -Destination $existing -NoClobber -ErrorAction Stop } | Should -Be 'DestinationExists,Requiem.PowerShell.ExportRequiemCasObjectCommand'
        (Get-Content $existing) | Should -Be 'keep me'
        Export-RequiemCasObject -Cas $BStore -Hash $BGood.Hash -Destination $existing
        Get-Content -Raw $existing | Should -Be 'good'
        Get-ErrorId { Optimize-RequiemCas -Cas $BStore -GracePeriod ([TimeSpan]::FromDays(-1)) -Force } | Should -Be 'InvalidGracePeriod,Requiem.PowerShell.OptimizeRequiemCasCommand'
    }
}

Describe 'Disk full' {
    BeforeAll {
        $script:Mount = Join-Path $Dir 'tmpfs'
        New-Item -ItemType Directory $Mount | Out-Null
        $script:Mounted = $false
        $script:MountError = ''
        if (-not $IsLinux) { $script:MountError = 'tmpfs mounts need Linux' }
        else {
            $msg = & mount -t tmpfs -o size=1m requiem-test $Mount 2>&1
            if ($LASTEXITCODE -eq 0) { $script:Mounted = $true } else { $script:MountError = "mount -t tmpfs failed (not root or no CAP_SYS_ADMIN): $msg" }
        }
    }
    AfterAll { if ($Mounted) { & umount $Mount } }

    It 'a put that does not fit is a CasDiskFull error, leaves no partial object, and the store still verifies' {
        if (-not $Mounted) { Set-ItResult -Skipped -Because $MountError; return }
        $store = Join-Path $Mount 'cas'
        $small = Add-RequiemCasObject -Cas $store -InputObject 'fits'
        $big = New-RandomFile -Path (Join-Path $Dir 'too-big.bin') -Length 1.5MB -Seed 77
        $bigName = (Get-RequiemDigest -LiteralPath $big.FullName -Domain Cas).Hash
        Get-ErrorId { Add-RequiemCasObject -Cas $store -LiteralPath $big.FullName -ErrorAction Stop } | Should -Be 'CasDiskFull,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $huge = New-RandomFile -Path (Join-Path $Dir 'too-big-stream.bin') -Length 5MB -Seed 78
        Get-ErrorId { Add-RequiemCasObject -Cas $store -LiteralPath $huge.FullName -ErrorAction Stop } | Should -Be 'CasDiskFull,Requiem.PowerShell.AddRequiemCasObjectCommand'
        Test-Path (Join-Path $store "objects/$($bigName.Substring(0, 2))/$bigName") | Should -BeFalse
        @(Get-ChildItem (Join-Path $store 'tmp') -File).Count | Should -Be 0

        # Many small files filling the disk mid-batch: what is reported is stored and intact; the rest are errors.
        $src = Join-Path $Dir 'fill'
        New-Item -ItemType Directory $src | Out-Null
        $files = 1..200 | ForEach-Object { New-RandomFile -Path (Join-Path $src "f$_.bin") -Length 8192 -Seed (3000 + $_) }
        $errs = $null
        $ok = $files | Add-RequiemCasObject -Cas $store -ErrorAction SilentlyContinue -ErrorVariable errs
        $errs.Count | Should -BeGreaterThan 0
        $errs[0].FullyQualifiedErrorId | Should -Be 'CasDiskFull,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $ok.Count | Should -BeGreaterThan 0
        # The audit entry of a batch may not fit either: that is its own error, after the batch's items.
        $itemErrors = @($errs | Where-Object FullyQualifiedErrorId -ne 'AuditWriteError,Requiem.PowerShell.AddRequiemCasObjectCommand')
        ($ok.Count + $itemErrors.Count) | Should -Be 200
        foreach ($o in $ok) { (Get-RequiemCasObject -Cas $store -Hash $o.Hash).Verified | Should -BeTrue }
        $report = Test-RequiemCas -All -Cas $store
        $report.Valid | Should -BeTrue
        $report.TempFiles.Count | Should -Be 0
        $report.Checked | Should -Be ($ok.Count + 1)
        (Export-RequiemCasObject -Cas $store -Hash $small.Hash -Raw) | Should -Be 'fits'

        # Export onto the full disk: an error, no partial destination, no temp file left.
        $other = New-Store
        $o = Add-RequiemCasObject -Cas $other -LiteralPath $big.FullName
        $dest = Join-Path $Mount 'exported.bin'
        Get-ErrorId { Export-RequiemCasObject -Cas $other -Hash $o.Hash -Destination $dest -ErrorAction Stop } | Should -Be 'DiskFull,Requiem.PowerShell.ExportRequiemCasObjectCommand'
        Test-Path $dest | Should -BeFalse
        @(Get-ChildItem -Force $Mount -Filter '*.requiem-tmp').Count | Should -Be 0
    }
}

Describe 'Statistics' {
    It 'counts objects, logical and stored bytes by encoding, and the largest objects' {
        $store = New-Store
        Add-RequiemCasObject -Cas $store -InputObject ('a' * 10000) -Compress Zstd | Out-Null
        Add-RequiemCasObject -Cas $store -InputObject ('b' * 300) | Out-Null
        Add-RequiemCasObject -Cas $store -InputObject ('c' * 20000) | Out-Null
        Set-Content (Join-Path $store 'tmp/left.tmp') 'x'
        $s = Get-RequiemCasStatistic -Cas $store -Top 2
        $s.ObjectCount | Should -Be 3
        $s.LogicalBytes | Should -Be 30300
        ($s.ByEncoding | Where-Object Encoding -eq 'Zstd').Count | Should -Be 1
        ($s.ByEncoding | Where-Object Encoding -eq 'Identity').LogicalBytes | Should -Be 20300
        $s.StoredBytes | Should -BeLessThan 30300
        $s.CompressionRatio | Should -BeLessThan 1
        $s.Top.Size | Should -Be @(20000, 10000)
        $s.TempFileCount | Should -Be 1
        $s.PutsWritten | Should -Be 3
    }
}
