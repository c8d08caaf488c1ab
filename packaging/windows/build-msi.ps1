# Builds the Windows installer (.msi) with the DirectML runtime and the
# default model. NOT BUILT OR TESTED IN THIS PROJECT'S CI (Linux only); see
# packaging/README.md.
# Needs: Rust (x86_64-pc-windows-msvc), Python with pip, npm (first run only;
# downloads are cached), ImageMagick (`magick`, for the .ico), and the WiX
# Toolset v4 (`dotnet tool install --global wix`).
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$version = (Select-String -Path Cargo.toml -Pattern '^version = "(.*)"' | Select-Object -First 1).Matches.Groups[1].Value
$target = if ($env:CARGO_TARGET_DIR) { $env:CARGO_TARGET_DIR } else { "target" }
$stage = Join-Path $target "windows\stage"

# onnxruntime-directml stops at 1.24.4 on PyPI: build against that API level.
cargo build --release --locked --no-default-features --features ort-1-24
if (Test-Path $stage) { Remove-Item -Recurse -Force $stage }
New-Item -ItemType Directory -Force $stage | Out-Null
# setup checks the model's sha256 and takes onnxruntime.dll + DirectML.dll from the wheel.
& "$target\release\backgrounderase.exe" setup --into $stage --runtime-package onnxruntime-directml --model isnet-imgly-medium --model u2netp
$expected = "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
$actual = (Get-FileHash "$stage\models\isnet-imgly-medium.onnx" -Algorithm SHA256).Hash.ToLower()
if ($actual -ne $expected) { throw "model checksum mismatch: $actual" }
$actual = (Get-FileHash "$stage\models\u2netp.onnx" -Algorithm SHA256).Hash.ToLower()
if ($actual -ne "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8") { throw "u2netp checksum mismatch: $actual" }

Copy-Item "$target\release\backgrounderase.exe" $stage
Copy-Item packaging\linux\MODEL-NOTICE.txt $stage
magick assets\icon-256.png -define icon:auto-resize=256,64,48,32,16 "$stage\backgrounderase.ico"
wix build packaging\windows\backgrounderase.wxs -arch x64 -d Version=$version -d Stage=$stage `
    -o (Join-Path $target "windows\BackgroundErase-$version-x64.msi")
