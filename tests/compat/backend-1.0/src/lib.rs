//! A backend as published against interface 1.0: each of the nine operations answers and says
//! on the console that it was called, so a host can show it reached every one.

use sygen_backend_api::sdk::{Backend, Context, Info, Result};

#[derive(Default)]
pub struct Compat10;

fn called(cx: &Context, operation: &str) {
    cx.console.println(&format!("compat10: {operation} called for {}", cx.service.name));
}

impl Backend for Compat10 {
    const INFO: Info = Info {
        name: "compat10",
        version: env!("CARGO_PKG_VERSION"),
        platform: "test",
        description: "Built against interface 1.0",
    };

    fn is_service_available(&self, cx: &Context) -> Result<bool> {
        called(cx, "is_service_available");
        Ok(true)
    }
    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        called(cx, "is_service_installed");
        Ok(true)
    }
    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        called(cx, "is_service_running");
        Ok(true)
    }
    fn install_service(&self, cx: &Context) -> Result<()> {
        called(cx, "install_service");
        Ok(())
    }
    fn start_service(&self, cx: &Context) -> Result<()> {
        called(cx, "start_service");
        Ok(())
    }
    fn stop_service(&self, cx: &Context) -> Result<()> {
        called(cx, "stop_service");
        Ok(())
    }
    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        called(cx, "uninstall_service");
        Ok(())
    }
    fn print_service_status(&self, cx: &Context) -> Result<()> {
        called(cx, "print_service_status");
        Ok(())
    }
    fn print_service_logs(&self, cx: &Context, follow: bool, lines: u32) -> Result<()> {
        called(cx, &format!("print_service_logs(follow={follow}, lines={lines})"));
        Ok(())
    }
}

sygen_backend_api::export_backend!(Compat10);
