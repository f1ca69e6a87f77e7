//! `--device cpu|cuda|cuda:N|auto`.

use tch::Device;

use crate::error::{Result, TrainerError};

/// `auto` picks the first CUDA device when libtorch sees one, else the CPU.
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(TrainerError::Invalid(format!("unknown device `{other}`, expected cpu, cuda, cuda:N or auto"))),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    if !tch::Cuda::is_available() {
        return Err(TrainerError::Invalid(
            "device `cuda` requested but libtorch sees no CUDA device (this libtorch may be CPU-only); use --device cpu or auto".into(),
        ));
    }
    let n = tch::Cuda::device_count() as usize;
    if i >= n {
        return Err(TrainerError::Invalid(format!("device cuda:{i} requested but only {n} CUDA device(s) exist")));
    }
    Ok(Device::Cuda(i))
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
