BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Test-RequiemCas on every core' {
    BeforeAll {
        # 240 small objects and two past the parallel threshold, identity and zstd; five of them spoiled in ways a disk
        # can spoil them, spread over the store.
        $script:Store = Join-Path $Dir 'store'
        $src = Join-Path $Dir 'src'
        New-Item -ItemType Directory -Path $src | Out-Null
        $rng = [Random]::new(15)
        $files = foreach ($i in 0..241) {
            $length = if ($i -ge 240) { 3MB + $i } else { 4096 + $i }
            $bytes = [byte[]]::new($length)
            $rng.NextBytes($bytes)
            for ($j = 0; $j -lt $length / 2; $j++) { $bytes[$j] = [byte]($j % 11) }   # zstd has something to compress
            $path = Join-Path $src "f$i.bin"
            [IO.File]::WriteAllBytes($path, $bytes)
            Get-Item -LiteralPath $path
        }
        $script:Objects = @(
            $files | Where-Object { [int]$_.BaseName.Substring(1) % 2 -eq 0 } | Add-RequiemCasObject -Cas $Store -Compress None
            $files | Where-Object { [int]$_.BaseName.Substring(1) % 2 -eq 1 } | Add-RequiemCasObject -Cas $Store -Compress Zstd
        )
        $script:Objects.Count | Should -Be 242
        $script:Spoiled = foreach ($k in 7, 50, 101, 160, 241) {
            $o = $Objects[$k]
            $bytes = [IO.File]::ReadAllBytes($o.ObjectPath)
            if ($k % 2 -eq 0) { $bytes[100] = $bytes[100] -bxor 0x10; [IO.File]::WriteAllBytes($o.ObjectPath, $bytes) }
            else { [IO.File]::WriteAllBytes($o.ObjectPath, $bytes[0..($bytes.Length - 9)]) }
            $o.Hash
        }
        $script:Sound = $Objects | Where-Object Hash -NotIn $Spoiled
    }

    It 'finds exactly the spoiled objects, in hash order, and counts every byte of the sound ones' {
        $r = Test-RequiemCas -All -Cas $Store
        $r.Valid | Should -BeFalse
        $r.Checked | Should -Be 242
        $r.Corrupt.Hash | Should -Be ([string[]]($Spoiled | Sort-Object { $_ } -CaseSensitive))
        foreach ($c in $r.Corrupt) { $c.Reason | Should -Match 'content hashes to|zstd frame does not decode' }
        $r.BytesChecked | Should -Be ($Sound | Measure-Object -Property Size -Sum).Sum
    }

    It 'gives the same report on one core (hash.max_threads = 1) as on every core' {
        $all = Test-RequiemCas -All -Cas $Store
        $config = Join-Path $Dir 'one-core.json'
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","hash":{"max_threads":1}}'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $config } -Script @"
Import-Module '$ModulePath'
`$r = Test-RequiemCas -All -Cas '$Store'
'checked=' + `$r.Checked
'bytes=' + `$r.BytesChecked
`$r.Corrupt | ForEach-Object { 'corrupt=' + `$_.Hash }
"@
        $out | Should -Contain "checked=$($all.Checked)"
        $out | Should -Contain "bytes=$($all.BytesChecked)"
        @($out | Where-Object { $_ -like 'corrupt=*' }) | Should -Be ([string[]]($all.Corrupt.Hash | ForEach-Object { "corrupt=$_" }))
    }

    It 'gives the same report, errors in the same order, with -ThrottleLimit 1 and -ThrottleLimit <_>' -ForEach 2, 5 {
        $one = Test-RequiemCas -All -Cas $Store -ThrottleLimit 1
        $many = Test-RequiemCas -All -Cas $Store -ThrottleLimit $_
        $one.Corrupt.Count | Should -Be 5
        foreach ($p in 'Checked', 'BytesChecked', 'Vanished', 'Reread', 'Valid') { $many.$p | Should -Be $one.$p -Because $p }
        ($many.Corrupt | ForEach-Object { "$($_.Hash) $($_.Reason)" }) | Should -Be ($one.Corrupt | ForEach-Object { "$($_.Hash) $($_.Reason)" })
        $oneSample = Test-RequiemCas -Sample 242 -Cas $Store -ThrottleLimit 1
        $manySample = Test-RequiemCas -Sample 242 -Cas $Store -ThrottleLimit $_
        ($manySample.Corrupt.Hash | Sort-Object) | Should -Be ($oneSample.Corrupt.Hash | Sort-Object)
    }

    It 'refuses -ThrottleLimit 0' {
        { Test-RequiemCas -All -Cas $Store -ThrottleLimit 0 -ErrorAction Stop } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,Requiem.PowerShell.TestRequiemCasCommand'
    }

    It 'checks a sample on every core and finds a spoiled object in it' {
        # Earlier checks moved the spoiled objects to quarantine/ (still reported as corrupt), so a sample of 242
        # reads every object that is still in objects/.
        $inObjects = @(Get-ChildItem -LiteralPath (Join-Path $Store 'objects') -File -Recurse).Count
        $r = Test-RequiemCas -Sample 242 -Cas $Store
        $r.Checked | Should -Be $inObjects
        ($r.Corrupt.Hash | Sort-Object) | Should -Be ([string[]]($Spoiled | Sort-Object))
    }
}

Describe 'A thread limit of 1 hashes on one core' {
    BeforeAll {
        # Two objects large enough that hashing dominates the CPU time measured (tens of milliseconds each).
        $script:BigStore = Join-Path $Dir 'big-store'
        $rng = [Random]::new(16)
        $script:BigObjects = foreach ($i in 1, 2) {
            $path = Join-Path $Dir "big$i.bin"
            $bytes = [byte[]]::new(48MB + $i)
            $rng.NextBytes($bytes)
            [IO.File]::WriteAllBytes($path, $bytes)
            Get-Item -LiteralPath $path | Add-RequiemCasObject -Cas $BigStore -Compress None
            Remove-Item -LiteralPath $path
        }
        function script:Measure-Cpu([scriptblock] $Action) {
            # CPU time of this process beside wall time: one thread working cannot use much more CPU than wall time.
            $process = [Diagnostics.Process]::GetCurrentProcess()
            $null = & $Action   # warm: page cache and optimised code
            $process.Refresh()
            $cpu0 = $process.TotalProcessorTime
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $result = foreach ($round in 1..3) { & $Action }
            $watch.Stop()
            $process.Refresh()
            [pscustomobject]@{ Cpu = ($process.TotalProcessorTime - $cpu0).TotalSeconds; Wall = $watch.Elapsed.TotalSeconds; Result = $result }
        }
    }
    AfterAll { Remove-Item -Recurse -Force $BigStore -ErrorAction Ignore }

    It 'Test-RequiemCas -ThrottleLimit 1 uses about one core and finds the same as every core' {
        $m = Measure-Cpu { Test-RequiemCas -All -Cas $BigStore -ThrottleLimit 1 }
        $m.Cpu | Should -BeLessOrEqual ($m.Wall * 1.25 + 0.1) -Because "CPU $($m.Cpu) s in $($m.Wall) s wall"
        $all = Test-RequiemCas -All -Cas $BigStore
        foreach ($r in $m.Result) {
            $r.Valid | Should -BeTrue
            $r.BytesChecked | Should -Be $all.BytesChecked
        }
    }

    It 'Get-RequiemDigest -ThrottleLimit 1 uses about one core and gives the same digest as every core' {
        $file = $BigObjects[0].ObjectPath
        $m = Measure-Cpu { (Get-RequiemDigest -LiteralPath $file -ThrottleLimit 1).Hash }
        $m.Cpu | Should -BeLessOrEqual ($m.Wall * 1.25 + 0.1) -Because "CPU $($m.Cpu) s in $($m.Wall) s wall"
        $expected = (Get-RequiemDigest -LiteralPath $file).Hash
        $m.Result | Should -Be @($expected, $expected, $expected)
    }
}
