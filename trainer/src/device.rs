//! `--device cpu|cuda|cuda:N|auto`, and what this binary's libtorch can see (`trainer devices`).

use serde::Serialize;
use tch::Device;

use crate::error::{Result, TrainerError};

/// `auto` picks the first CUDA device when libtorch sees one, else the CPU, and logs why.
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            let report = DeviceReport::probe();
            let device = if report.cuda_devices > 0 { Device::Cuda(0) } else { Device::Cpu };
            tracing::info!("--device auto: {}", report.auto_choice());
            Ok(device)
        }
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(TrainerError::Invalid(format!("unknown device `{other}`, expected cpu, cuda, cuda:N or auto"))),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    let report = DeviceReport::probe();
    if report.cuda_devices == 0 {
        return Err(TrainerError::Invalid(format!(
            "device `cuda` requested but {}; use --device cpu or auto",
            report.why_no_cuda()
        )));
    }
    if i >= report.cuda_devices {
        return Err(TrainerError::Invalid(format!(
            "device cuda:{i} requested but only {} CUDA device(s) exist",
            report.cuda_devices
        )));
    }
    Ok(Device::Cuda(i))
}

/// What the libtorch this process loaded offers (`trainer devices --json`).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// libtorch_cuda.so is mapped into this process (linked, so CUDA kernels are registered).
    pub cuda_linked: bool,
    /// CUDA devices libtorch sees (0 without a driver or GPU).
    pub cuda_devices: usize,
    pub cudnn: bool,
    /// This binary can capture training steps as CUDA graphs.
    pub cuda_graphs: bool,
    /// The libtorch library folder in use.
    pub libtorch: Option<String>,
}

impl DeviceReport {
    pub fn probe() -> DeviceReport {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let lib_path =
            |name: &str| maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with(name)).map(str::to_string);
        let cuda_devices = if tch::Cuda::is_available() { tch::Cuda::device_count().max(0) as usize } else { 0 };
        DeviceReport {
            cuda_linked: lib_path("/libtorch_cuda.so").is_some(),
            cuda_devices,
            cudnn: cuda_devices > 0 && tch::Cuda::cudnn_is_available(),
            cuda_graphs: crate::fast_ops::has_cuda_graphs(),
            libtorch: lib_path("/libtorch_cpu.so")
                .and_then(|p| std::path::Path::new(&p).parent().map(|d| d.display().to_string())),
        }
    }

    fn why_no_cuda(&self) -> &'static str {
        if self.cuda_linked {
            "libtorch has CUDA but sees no device (no NVIDIA driver or GPU, or CUDA_VISIBLE_DEVICES hides them)"
        } else {
            "this libtorch is CPU-only (libtorch_cuda.so is not loaded)"
        }
    }

    /// One line saying what `--device auto` chose and why.
    pub fn auto_choice(&self) -> String {
        if self.cuda_devices > 0 {
            format!("using cuda:0 ({} CUDA device(s) visible)", self.cuda_devices)
        } else {
            format!("using the CPU: {}", self.why_no_cuda())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").unwrap_err().to_string().contains("tpu"));
        assert!(parse_device("auto").is_ok());
    }
}
